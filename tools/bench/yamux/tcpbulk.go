// tcpbulk: bulk transfer over plain TCP connections, the baseline of the yamux benchmark.
//
//	tcpbulk -listen ADDR                       sink: read each connection to EOF, answer its SHA-256 hex, close
//	tcpbulk -connect ADDR -bytes N -streams K  source: K connections, N pseudo-random bytes each, half-close,
//	                                           check the answer; prints "ok MiB/s"
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"net"
	"os"
	"time"
)

func main() {
	listen := flag.String("listen", "", "sink: address to listen on")
	connect := flag.String("connect", "", "source: address to connect to")
	size := flag.Int64("bytes", 64<<20, "source: bytes per connection")
	streams := flag.Int("streams", 1, "source: concurrent connections")
	flag.Parse()
	if *listen != "" {
		sink(*listen)
		return
	}
	if *connect == "" {
		fmt.Fprintln(os.Stderr, "give -listen or -connect")
		os.Exit(2)
	}
	start := time.Now()
	errs := make(chan error, *streams)
	for i := 0; i < *streams; i++ {
		go func(seed int64) { errs <- source(*connect, *size, seed) }(int64(i + 1))
	}
	for i := 0; i < *streams; i++ {
		if err := <-errs; err != nil {
			fmt.Println("fail", err)
			os.Exit(1)
		}
	}
	elapsed := time.Since(start).Seconds()
	fmt.Printf("ok %.1f MiB/s\n", float64(*size)*float64(*streams)/elapsed/(1<<20))
}

func sink(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("ready %s\n", ln.Addr())
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		go func(conn net.Conn) {
			defer conn.Close()
			h := sha256.New()
			if _, err := io.Copy(h, conn); err != nil {
				return
			}
			io.WriteString(conn, hex.EncodeToString(h.Sum(nil)))
		}(conn)
	}
}

func source(addr string, size int64, seed int64) error {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	rng := rand.New(rand.NewSource(seed))
	h := sha256.New()
	chunk := make([]byte, 64*1024)
	for left := size; left > 0; {
		n := int64(len(chunk))
		if left < n {
			n = left
		}
		rng.Read(chunk[:n])
		h.Write(chunk[:n])
		if _, err := conn.Write(chunk[:n]); err != nil {
			return err
		}
		left -= n
	}
	conn.(*net.TCPConn).CloseWrite()
	reply, err := io.ReadAll(conn)
	if err != nil {
		return err
	}
	if string(reply) != hex.EncodeToString(h.Sum(nil)) {
		return fmt.Errorf("checksum mismatch (%d bytes of reply)", len(reply))
	}
	return nil
}
