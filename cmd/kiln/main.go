// Command kiln is the one Kiln binary: validator node, CLI, provider and demo.
package main

import "os"

func main() { os.Exit(Execute(os.Args[1:])) }
