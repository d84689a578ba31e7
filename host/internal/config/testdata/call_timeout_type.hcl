kernel {
  call_timeout = 10
}
