kernel {
  em_count = 2

vnet "j1" {}
