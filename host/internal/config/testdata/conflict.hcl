module "greeter" {}
module "echo" {}

vnet "j1" {
  greetings = ["hello"]
}
