module "if_bridge" {}

vnet "9lives" {}

vnet "j1" {
  interface "em5" {}
  interface "bridge" {}
  interface "bridge1" {}
  interface "bridge1" {}
  interface "lo0" {}
}

vnet "vnet0" {
  loan = ["em0"]
}
