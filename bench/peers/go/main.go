// The Go client (nats.go) peer for bench/run.py: the documented JetStream patterns, nothing tuned.
//
//	peer publish URL SUBJECT FILE          PublishAsync, 4000 acks in flight (the default), every ack checked
//	peer durable URL STREAM NAME COUNT OUT pull consumer, Fetch(500), ack each, payloads to OUT
//	peer ordered URL SUBJECT COUNT OUT     an ordered push consumer, no acks, payloads to OUT
package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

func main() {
	what, url := os.Args[1], os.Args[2]
	nc, err := nats.Connect(url)
	if err != nil {
		fail(err)
	}
	js, err := nc.JetStream()
	if err != nil {
		fail(err)
	}
	switch what {
	case "publish":
		publish(js, os.Args[3], os.Args[4])
	case "durable":
		count, _ := strconv.Atoi(os.Args[5])
		durable(js, os.Args[3], os.Args[4], count, os.Args[6])
	case "ordered":
		count, _ := strconv.Atoi(os.Args[4])
		ordered(js, os.Args[3], count, os.Args[5])
	}
	nc.Drain()
	for !nc.IsClosed() {
		time.Sleep(time.Millisecond)
	}
}

func publish(js nats.JetStreamContext, subject, path string) {
	if _, err := js.StreamNameBySubject(subject); err != nil {
		if _, err := js.AddStream(&nats.StreamConfig{Name: subject, Subjects: []string{subject}}); err != nil {
			fail(err)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		fail(err)
	}
	var futures []nats.PubAckFuture
	for _, line := range bytes.Split(data, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		f, err := js.PublishAsync(subject, line)
		for err != nil && strings.Contains(err.Error(), "stalled") { // the window stayed full for 200 ms (a busy machine): again
			f, err = js.PublishAsync(subject, line)
		}
		if err != nil {
			fail(err)
		}
		futures = append(futures, f)
	}
	<-js.PublishAsyncComplete()
	confirmed := 0
	for _, f := range futures {
		select {
		case ack := <-f.Ok():
			if ack.Sequence > 0 {
				confirmed++
			}
		case err := <-f.Err():
			fail(err)
		}
	}
	fmt.Println("published", confirmed)
}

func durable(js nats.JetStreamContext, stream, name string, count int, out string) {
	// Made first, then bound: a consumer the library made itself is deleted when the subscription drains.
	if _, err := js.AddConsumer(stream, &nats.ConsumerConfig{Durable: name, AckPolicy: nats.AckExplicitPolicy, DeliverPolicy: nats.DeliverAllPolicy}); err != nil {
		fail(err)
	}
	sub, err := js.PullSubscribe("", name, nats.Bind(stream, name))
	if err != nil {
		fail(err)
	}
	file, _ := os.Create(out)
	w := bufio.NewWriterSize(file, 1<<16)
	got := 0
	for got < count {
		msgs, err := sub.Fetch(500, nats.MaxWait(5*time.Second))
		if err != nil {
			fail(err)
		}
		for _, m := range msgs {
			w.Write(m.Data)
			w.WriteByte('\n')
			m.Ack()
			got++
		}
	}
	w.Flush()
	file.Close()
	fmt.Println("read", got)
}

func ordered(js nats.JetStreamContext, subject string, count int, out string) {
	file, _ := os.Create(out)
	w := bufio.NewWriterSize(file, 1<<16)
	got := 0
	done := make(chan struct{})
	sub, err := js.Subscribe(subject, func(m *nats.Msg) {
		if got >= count {
			return
		}
		w.Write(m.Data)
		w.WriteByte('\n')
		got++
		if got == count {
			close(done)
		}
	}, nats.OrderedConsumer(), nats.DeliverAll())
	if err != nil {
		fail(err)
	}
	if count > 0 {
		<-done
	}
	sub.Unsubscribe()
	w.Flush()
	file.Close()
	fmt.Println("read", got)
}
