module "if_bridge" {}

vnet "j.1" {}

vnet "42" {}

vnet "j1" {
  interface "em5" {}
  interface "bridge" {}
  interface "bridge-1" {}
  interface "bridge01" {}
  interface "bridge1" {}
  interface "bridge1" {}
  interface "lo0" {}
}

vnet "vnet0" {
  loan = ["em0"]
}
