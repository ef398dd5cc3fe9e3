// Command noop does nothing: the cost of starting any static Go process,
// the lowest floor podhook is measured against.
package main

func main() {}
