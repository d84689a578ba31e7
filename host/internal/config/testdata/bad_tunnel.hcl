module "if_gif" {}
module "if_bridge" {}

vnet "j1" {
  # The addresses are if_gif's to judge, when the command runs: no error.
  interface "gif0" {
    tunnel = { src = "10.0.0.1", dst = "2001:db8::1" }
  }
  interface "gif1" {
    tunnel = { src = "10.0.0.1", dest = "10.0.0.2" }
  }
  interface "bridge0" {
    tunnel = { src = "10.0.0.1", dst = "10.0.0.2" }
  }
  interface "gif2" {
    tunnel = "10.0.0.1 10.0.0.2"
  }
}
