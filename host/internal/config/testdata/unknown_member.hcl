module "if_bridge" {}

vnet "j1" {
  loan = ["em1"]
  interface "bridge0" {
    members = ["em1", "em0"]
  }
}
