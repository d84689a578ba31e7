module "if_epair" {}

vnet "j1" {
  loan = ["epair0b"] # before the vnet0 block that makes it
}

vnet "vnet0" {
  interface "epair0" {}
}

vnet "j2" {
  loan = ["epair0a", "epair0c"]
}

vnet "j3" {
  loan = ["epair0a"]
}
