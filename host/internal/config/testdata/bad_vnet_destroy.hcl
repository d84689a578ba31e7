kernel {
  vnet_destroy = "later"
}

scenario {
  steps = ["-! vnet list", "- - vnet list"]
}
