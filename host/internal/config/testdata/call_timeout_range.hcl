kernel {
  call_timeout = "0s"
}
