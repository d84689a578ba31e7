module "ipfw" {}
