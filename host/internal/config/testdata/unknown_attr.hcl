kernel {
  em_cont = 2
}
