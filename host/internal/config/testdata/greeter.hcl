# A module the host knows nothing of: its vnet attribute and block, its
# cloner's interface setting, all from its declaration.
kernel {
  em_count = 3
}

module "greeter" {}

vnet "j1" {
  loan = ["em1"]
  interface "hi0" {
    peer = "em1"
  }
  greetings = ["hello world", "good  bye"]
  mood {
    level = 3
    loud  = true
    hear  = ["em1", "hi0"]
  }
}

vnet "vnet0" {
  greetings = ["hi"]
}
