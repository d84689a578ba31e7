vnet "j1" {}
vnet "j1" {}
