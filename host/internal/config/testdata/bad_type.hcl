kernel {
  em_count = "four"
  legacy {
    teardown_if_first = "maybe"
  }
}

module "ipfw" {
  sha256 = "abc"
}
