// Command httpserve is a Go net/http server for the real-program tests:
// it serves the files of a directory, and on /count how many times
// /count was asked (a number only its memory holds).
//
//	httpserve ADDR DIR
package main

import (
	"fmt"
	"log"
	"net/http"
	"os"
	"sync/atomic"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: httpserve ADDR DIR")
		os.Exit(2)
	}
	var count atomic.Int64
	mux := http.NewServeMux()
	mux.Handle("/", http.FileServer(http.Dir(os.Args[2])))
	mux.HandleFunc("/count", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "%d\n", count.Add(1))
	})
	log.Fatal(http.ListenAndServe(os.Args[1], mux))
}
