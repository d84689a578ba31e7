kernel {
  em_count = 3
}

vnet "j1" {
  loan = ["em1", "em3", "eth0"]
}

vnet "j2" {
  loan = ["em1"]
}
