vnet "j1" {
  ipfw = ["add 100 deny ip from any to any"]
  multicast {
    router = true
  }
}
