module "ipfw" {}
module "if_nope" {}
