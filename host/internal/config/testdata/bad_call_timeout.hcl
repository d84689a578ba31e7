kernel {
  call_timeout = "ten seconds"
}
