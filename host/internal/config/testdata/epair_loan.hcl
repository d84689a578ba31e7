# FreeBSD's test lifecycle: an epair made on the host, one end loaned to
# a jail; cleanups that may fail; jails removed as jail -r does.
kernel {
  vnet_destroy = "async"
}

module "if_epair" {}

vnet "vnet0" {
  interface "epair0" {}
  interface "epair1" {}
}

vnet "j1" {
  loan = ["epair0b"]
}

vnet "j2" {
  loan = ["epair1a", "epair1b", "em1"]
}

scenario {
  steps = [
    "ifconfig -j j1 epair0b up",
    "- ifconfig epair5a destroy",
    "! ifconfig epair0b destroy",
    "vnet destroy -w j1",
  ]
}
