kernel {
  em_count = 3
}

module "if_bridge" {}

vnet "j1" {
  loan = ["em1", "em2"]
  interface "bridge0" {
    members = ["em1", "em2"]
  }
  interface "bridge1" {
    members = ["em2", "bridge0"]
  }
}
