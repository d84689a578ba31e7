kernel {
  em_count = 3
}

module "greeter" {}
module "ipfw" {}

vnet "j1" {
  loan = ["em1"]
  interface "hi0" {
    peer = "em2"
  }
  greeting = ["typo"]
  ipfw     = ["100 allow ip from any to any", "add 200 deny ip from any to any"]
  mood {
    loud = "yes"
  }
  mood {
    level = 1
  }
}

vnet "j2" {
  mood {
    level = 2
    hear  = ["lo0", "lo0"]
  }
}
