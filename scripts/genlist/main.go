// Command genlist prints N distinct IP list entries for benchmarks: IPv4
// /32s and /24s outside the lab's addresses, or with -v6 IPv6 /64s.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"strconv"
)

func main() {
	v6 := flag.Bool("v6", false, "print IPv6 /64s")
	flag.Parse()
	n, err := strconv.Atoi(flag.Arg(0))
	if err != nil || n < 0 {
		fmt.Fprintln(os.Stderr, "usage: genlist [-v6] N")
		os.Exit(2)
	}
	w := bufio.NewWriterSize(os.Stdout, 1<<20)
	defer w.Flush()
	for i := 0; i < n; i++ {
		switch {
		case *v6:
			fmt.Fprintf(w, "2001:db8:%x:%x::/64\n", i>>16, i&0xffff)
		case i%10 == 9:
			fmt.Fprintf(w, "%d.%d.%d.0/24\n", 101+i>>16, (i>>8)&255, i&255)
		default:
			fmt.Fprintf(w, "%d.%d.%d.%d\n", 11+i>>16, (i>>8)&255, i&255, 1+i%250)
		}
	}
}
