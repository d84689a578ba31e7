scenario {
  steps = [
    "kldstat",
    "bogus command",
    "",
  ]
}
