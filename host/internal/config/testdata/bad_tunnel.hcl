module "if_gif" {}

vnet "j1" {
  interface "gif0" {
    tunnel = { src = "10.0.0.1", dst = "2001:db8::1" }
  }
  interface "gif1" {
    tunnel = { src = "10.0.0.1", dest = "10.0.0.2" }
  }
  interface "bridge0" {
    tunnel = { src = "10.0.0.1", dst = "10.0.0.2" }
  }
}
