jail "j1" {}
