// Command yamux-peer is an interoperability peer for zrc-relay's Swift yamux
// implementation. It runs hashicorp/yamux (Debian's golang-github-hashicorp-yamux-dev,
// built without module downloads) over one TCP connection and performs one behaviour:
//
//	echo    every accepted stream echoes its bytes back until EOF, then closes
//	sink    every accepted stream is read to EOF; the SHA-256 hex of it is written back, then close
//	source  opens -streams K streams, writes -bytes N pseudo-random bytes on each, half-closes,
//	        reads the reply (-reply sha256: the peer's SHA-256 hex; -reply echo: the bytes back)
//	        and prints "ok" or a mismatch
//	ping    pings the session -count times and prints "rtt DURATION" for each
//	rst     speaks raw yamux frames: opens a stream, sends a few bytes, resets it, then checks
//	        that the session still answers a ping (this yamux version has no reset API)
//
// With -listen it accepts one connection and prints "ready ADDR" first. It exits 0 on
// success, non-zero with a message on stderr on failure, and by itself after -timeout.
package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/ioutil"
	"math/rand"
	"net"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/yamux"
)

type options struct {
	mode     string
	listen   string
	connect  string
	behavior string
	bytes    int64
	streams  int
	reply    string
	size     int
	duration time.Duration
	count    int
	seed     int64
	window   uint
	backlog  int
	timeout  time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.mode, "mode", "server", "yamux role: server or client")
	flag.StringVar(&o.listen, "listen", "", "accept one TCP connection on ADDR (prints \"ready ADDR\")")
	flag.StringVar(&o.connect, "connect", "", "connect to ADDR")
	flag.StringVar(&o.behavior, "behavior", "echo", "echo, sink, count, source, ping, pingpong or rst")
	flag.Int64Var(&o.bytes, "bytes", 1<<20, "source: bytes written on each stream")
	flag.IntVar(&o.streams, "streams", 1, "source: number of concurrent streams")
	flag.StringVar(&o.reply, "reply", "sha256", "source: what the peer answers, sha256 (a sink), count (a count sink: no hashing, fixed bytes) or echo")
	flag.IntVar(&o.size, "size", 64, "pingpong: bytes per message")
	flag.DurationVar(&o.duration, "duration", 3*time.Second, "pingpong: how long to run")
	flag.IntVar(&o.count, "count", 3, "ping: number of pings")
	flag.Int64Var(&o.seed, "seed", 1, "source: seed of the pseudo-random bytes")
	flag.UintVar(&o.window, "window", 256*1024, "receive window per stream (MaxStreamWindowSize)")
	flag.IntVar(&o.backlog, "backlog", 256, "accept backlog")
	flag.DurationVar(&o.timeout, "timeout", 60*time.Second, "exit with failure after this long")
	flag.Parse()

	time.AfterFunc(o.timeout, func() {
		fail("timeout after %v", o.timeout)
	})

	if err := run(o); err != nil {
		fail("%v", err)
	}
	os.Exit(0)
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "yamux-peer: "+format+"\n", args...)
	os.Exit(1)
}

func run(o options) error {
	if o.mode != "server" && o.mode != "client" {
		return fmt.Errorf("-mode must be server or client, not %q", o.mode)
	}
	if (o.listen == "") == (o.connect == "") {
		return errors.New("give exactly one of -listen and -connect")
	}
	conn, err := transport(o)
	if err != nil {
		return err
	}
	defer conn.Close()

	if o.behavior == "rst" {
		return rawReset(conn, o)
	}

	cfg := yamux.DefaultConfig()
	cfg.LogOutput = os.Stderr
	cfg.MaxStreamWindowSize = uint32(o.window)
	cfg.AcceptBacklog = o.backlog
	var session *yamux.Session
	if o.mode == "server" {
		session, err = yamux.Server(conn, cfg)
	} else {
		session, err = yamux.Client(conn, cfg)
	}
	if err != nil {
		return err
	}
	defer session.Close()

	switch o.behavior {
	case "echo":
		return serve(session, echoStream)
	case "sink":
		return serve(session, sinkStream)
	case "count":
		return serve(session, countStream)
	case "pingpong":
		return pingPong(session, o)
	case "source":
		return source(session, o)
	case "ping":
		return ping(session, o)
	default:
		return fmt.Errorf("unknown -behavior %q", o.behavior)
	}
}

// transport listens for one connection or dials one.
func transport(o options) (net.Conn, error) {
	if o.connect != "" {
		return net.Dial("tcp", o.connect)
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return nil, err
	}
	defer ln.Close()
	fmt.Printf("ready %s\n", ln.Addr())
	return ln.Accept()
}

// serve accepts streams until the session ends, handling each in its own goroutine.
// It fails if any stream ended with an error other than a reset by the peer.
func serve(session *yamux.Session, handle func(*yamux.Stream) error) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []error
	for {
		stream, err := session.AcceptStream()
		if err != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := handle(stream)
			switch {
			case err == nil:
			case errors.Is(err, yamux.ErrConnectionReset):
				fmt.Printf("reset %d\n", stream.StreamID())
			default:
				mu.Lock()
				failures = append(failures, fmt.Errorf("stream %d: %v", stream.StreamID(), err))
				mu.Unlock()
			}
		}()
	}
	// The session is over; streams still running fail fast now.
	wg.Wait()
	if len(failures) > 0 {
		return failures[0]
	}
	return nil
}

func echoStream(stream *yamux.Stream) error {
	defer stream.Close()
	_, err := io.Copy(stream, stream)
	return err
}

func sinkStream(stream *yamux.Stream) error {
	defer stream.Close()
	h := sha256.New()
	if _, err := io.Copy(h, stream); err != nil {
		return err
	}
	_, err := io.WriteString(stream, hex.EncodeToString(h.Sum(nil)))
	return err
}

// countStream discards a stream to its end and answers the byte count (20 decimal digits).
func countStream(stream *yamux.Stream) error {
	defer stream.Close()
	n, err := io.Copy(ioutil.Discard, stream)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stream, "%020d", n)
	return err
}

// pingPong sends o.size bytes on one stream and waits for them to come back, for
// o.duration, and prints the round trips per second (the peer echoes).
func pingPong(session *yamux.Session, o options) error {
	stream, err := session.OpenStream()
	if err != nil {
		return err
	}
	defer stream.Close()
	msg := make([]byte, o.size)
	back := make([]byte, o.size)
	start := time.Now()
	n := 0
	for time.Since(start) < o.duration {
		if _, err := stream.Write(msg); err != nil {
			return fmt.Errorf("write: %v", err)
		}
		if _, err := io.ReadFull(stream, back); err != nil {
			return fmt.Errorf("read: %v", err)
		}
		n++
	}
	elapsed := time.Since(start)
	fmt.Fprintf(os.Stderr, "yamux-peer: %d round trips of %d bytes in %v (%.0f round trips/s)\n",
		n, o.size, elapsed, float64(n)/elapsed.Seconds())
	fmt.Println("ok")
	return nil
}

// source opens the streams, writes and checks each concurrently.
func source(session *yamux.Session, o options) error {
	if o.reply != "sha256" && o.reply != "echo" && o.reply != "count" {
		return fmt.Errorf("-reply must be sha256, count or echo, not %q", o.reply)
	}
	start := time.Now()
	errs := make(chan error, o.streams)
	for i := 0; i < o.streams; i++ {
		stream, err := session.OpenStream()
		if err != nil {
			return fmt.Errorf("open stream %d: %v", i, err)
		}
		go func(i int, stream *yamux.Stream) {
			errs <- sourceStream(stream, o, o.seed+int64(i))
		}(i, stream)
	}
	var first error
	for i := 0; i < o.streams; i++ {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	if first != nil {
		fmt.Printf("mismatch %v\n", first)
		return first
	}
	elapsed := time.Since(start)
	total := float64(o.bytes) * float64(o.streams)
	fmt.Fprintf(os.Stderr, "yamux-peer: %d streams x %d bytes in %v (%.1f MiB/s)\n",
		o.streams, o.bytes, elapsed, total/elapsed.Seconds()/(1<<20))
	fmt.Println("ok")
	return nil
}

// sourceStream writes o.bytes pseudo-random bytes while reading the reply.
//
// This yamux version (Debian's 2019 snapshot) returns io.EOF from Read on a stream we
// half-closed whenever its buffer is momentarily empty, even though the peer may still
// send. So an echo reply is read whole before our FIN, and a sha256 reply (which the peer
// only sends after our FIN) is read with readAfterClose, which retries such early EOFs.
func sourceStream(stream *yamux.Stream, o options, seed int64) error {
	id := stream.StreamID()
	if o.reply == "count" {
		return countedStream(stream, o)
	}
	echoed := make(chan error, 1)
	echoHash := sha256.New()
	if o.reply == "echo" {
		go func() {
			_, err := io.CopyN(echoHash, stream, o.bytes)
			echoed <- err
		}()
	}

	rng := rand.New(rand.NewSource(seed))
	h := sha256.New()
	w := bufio.NewWriterSize(stream, 64*1024)
	chunk := make([]byte, 32*1024)
	for left := o.bytes; left > 0; {
		n := int64(len(chunk))
		if left < n {
			n = left
		}
		rng.Read(chunk[:n])
		h.Write(chunk[:n])
		if _, err := w.Write(chunk[:n]); err != nil {
			return fmt.Errorf("stream %d write: %v", id, err)
		}
		left -= n
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("stream %d flush: %v", id, err)
	}
	want := hex.EncodeToString(h.Sum(nil))

	var got string
	if o.reply == "echo" {
		if err := <-echoed; err != nil {
			return fmt.Errorf("stream %d read echo: %v", id, err)
		}
		got = hex.EncodeToString(echoHash.Sum(nil))
		if err := stream.Close(); err != nil {
			return fmt.Errorf("stream %d close: %v", id, err)
		}
	} else {
		// Close is a half-close (FIN) in yamux: the reply can still be read.
		if err := stream.Close(); err != nil {
			return fmt.Errorf("stream %d close: %v", id, err)
		}
		reply := make([]byte, sha256.Size*2)
		if err := readAfterClose(stream, reply); err != nil {
			return fmt.Errorf("stream %d read reply: %v", id, err)
		}
		got = string(reply)
	}
	if got != want {
		return fmt.Errorf("stream %d: got %q, want %q", id, got, want)
	}
	return nil
}

// countedStream writes o.bytes of one fixed chunk (no random bytes, no hashing: the cost
// is yamux's own) and checks the peer's byte count.
func countedStream(stream *yamux.Stream, o options) error {
	id := stream.StreamID()
	chunk := make([]byte, 64*1024)
	for left := o.bytes; left > 0; {
		n := int64(len(chunk))
		if left < n {
			n = left
		}
		if _, err := stream.Write(chunk[:n]); err != nil {
			return fmt.Errorf("stream %d write: %v", id, err)
		}
		left -= n
	}
	if err := stream.Close(); err != nil {
		return fmt.Errorf("stream %d close: %v", id, err)
	}
	reply := make([]byte, 20)
	if err := readAfterClose(stream, reply); err != nil {
		return fmt.Errorf("stream %d read reply: %v", id, err)
	}
	if want := fmt.Sprintf("%020d", o.bytes); string(reply) != want {
		return fmt.Errorf("stream %d: peer counted %q, want %q", id, reply, want)
	}
	return nil
}

// readAfterClose fills buf from a stream we half-closed, retrying the early io.EOF this
// yamux version returns while the peer's data is still on its way.
func readAfterClose(stream *yamux.Stream, buf []byte) error {
	for got := 0; got < len(buf); {
		n, err := stream.Read(buf[got:])
		got += n
		switch {
		case err == nil:
		case err == io.EOF:
			if n == 0 {
				time.Sleep(time.Millisecond)
			}
		default:
			return err
		}
	}
	return nil
}

func ping(session *yamux.Session, o options) error {
	for i := 0; i < o.count; i++ {
		rtt, err := session.Ping()
		if err != nil {
			return fmt.Errorf("ping %d: %v", i, err)
		}
		fmt.Printf("rtt %v\n", rtt)
	}
	fmt.Println("ok")
	return nil
}

// Raw frame helpers for the rst behaviour. Header: version, type, flags, stream id, length.
const (
	typeData         = 0
	typeWindowUpdate = 1
	typePing         = 2
	typeGoAway       = 3
	flagSYN          = 1
	flagACK          = 2
	flagRST          = 8
	rstPingOpaque    = 0x52535421 // "RST!"
)

func frame(typ uint8, flags uint16, id uint32, length uint32, payload []byte) []byte {
	b := make([]byte, 12, 12+len(payload))
	b[0] = 0
	b[1] = typ
	binary.BigEndian.PutUint16(b[2:4], flags)
	binary.BigEndian.PutUint32(b[4:8], id)
	binary.BigEndian.PutUint32(b[8:12], length)
	return append(b, payload...)
}

// rawReset opens a stream, sends data, resets it and checks that the peer keeps the session
// (it answers a ping and sends no GoAway).
func rawReset(conn net.Conn, o options) error {
	id := uint32(1)
	if o.mode == "server" {
		id = 2
	}
	payload := []byte("rst-test")
	var out bytes.Buffer
	out.Write(frame(typeWindowUpdate, flagSYN, id, 0, nil))
	out.Write(frame(typeData, 0, id, uint32(len(payload)), payload))
	out.Write(frame(typeWindowUpdate, flagRST, id, 0, nil))
	out.Write(frame(typePing, flagSYN, 0, rstPingOpaque, nil))
	if _, err := conn.Write(out.Bytes()); err != nil {
		return err
	}
	r := bufio.NewReader(conn)
	hdr := make([]byte, 12)
	for {
		if _, err := io.ReadFull(r, hdr); err != nil {
			return fmt.Errorf("reading peer frames: %v", err)
		}
		if hdr[0] != 0 {
			return fmt.Errorf("peer sent version %d", hdr[0])
		}
		typ, flags := hdr[1], binary.BigEndian.Uint16(hdr[2:4])
		sid, length := binary.BigEndian.Uint32(hdr[4:8]), binary.BigEndian.Uint32(hdr[8:12])
		switch typ {
		case typeData:
			if _, err := io.CopyN(ioutil.Discard, r, int64(length)); err != nil {
				return err
			}
		case typePing:
			if flags&flagSYN != 0 {
				if _, err := conn.Write(frame(typePing, flagACK, 0, length, nil)); err != nil {
					return err
				}
			} else if flags&flagACK != 0 && length == rstPingOpaque {
				fmt.Println("ok")
				return nil
			}
		case typeGoAway:
			return fmt.Errorf("peer sent GoAway %d after the reset", length)
		case typeWindowUpdate:
			if sid == id && flags&flagRST != 0 {
				fmt.Printf("peer reset %d\n", sid)
			}
		default:
			return fmt.Errorf("peer sent frame type %d", typ)
		}
	}
}
