# The smallest useful run: one module, one VNET with one rule.
module "ipfw" {}

vnet "j1" {
  ipfw = ["add 100 allow ip from any to any"]
}
