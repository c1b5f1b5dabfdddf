package main

import (
	"errors"
	"flag"
	"fmt"
	"runtime"
	"time"

	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/sluicelb/sluice/bpf/bench"
	testlab "github.com/sluicelb/sluice/test/lab"
)

// The forwarding runs where the kernel refuses live frames: frames seeded
// once through a packet socket go round a loop (bpf/bench/loop.c) — the
// load balancer's input (lbA), the contender, its output to the backends'
// veth, where loop_back counts each frame, makes it the next client frame
// and redirects it into the clients' veth, whose peer is lbA again. The
// contender's core (lbA's NAPI thread) does what it does with live frames;
// the loop's one XDP run a frame is on the generator's core (beB's NAPI
// thread). The frames in flight fill the rings before the slower stage, so
// the rate that comes round is that stage's.

var (
	loopSeeds  = flag.Int("loop-seeds", 2048, "l4, without live frames: frames seeded into the loop")
	loopWindow = flag.Duration("loop-window", 2*time.Second, "l4, without live frames: how long the loop's rate is counted")
)

// frameLoop is loop.c attached to the backends' veth.
type frameLoop struct {
	objs     bench.LoopObjects
	lk       link.Link
	genIdx   int
	unthread func() // beB's NAPI back in softirq context
}

// close detaches the loop and gives beB's NAPI back to softirq context:
// in a thread pinned to the generator's CPU it would share that CPU with
// the TCP comparison's seeding, which then starved the backends' answers.
func (f *frameLoop) close() {
	f.lk.Close()
	f.objs.Close()
	if f.unthread != nil {
		f.unthread()
	}
}

// attachLoop loads loop.c for the lab and attaches loop_back to beB, whose
// NAPI runs in a thread of its own; loop_out stays empty until a run.
func (l l4lab) attachLoop() (*frameLoop, error) {
	lbMAC, err := macOf(l.lb, l.lbA)
	if err != nil {
		return nil, err
	}
	genMAC, err := macOf(l.gen, l.genIf)
	if err != nil {
		return nil, err
	}
	genIdx, err := ifindexOf(l.gen, l.genIf)
	if err != nil {
		return nil, err
	}
	spec, err := bench.LoadLoop()
	if err != nil {
		return nil, err
	}
	for name, v := range map[string]any{"lb_mac": [6]byte(lbMAC), "gen_mac": [6]byte(genMAC),
		"vip": l4VIP.As4(), "ports": uint32(*srcPorts)} {
		if err := spec.Variables[name].Set(v); err != nil {
			return nil, fmt.Errorf("loop.c %s: %w", name, err)
		}
	}
	f := &frameLoop{genIdx: genIdx}
	if err := spec.LoadAndAssign(&f.objs, nil); err != nil {
		return nil, err
	}
	if f.lk, err = attachXDP(l.be, l.beB, f.objs.LoopBack); err != nil {
		f.objs.Close()
		return nil, err
	}
	// After the attach: a veth has NAPI (and a thread for it) only then.
	if err := sh(threadedNAPI(l.be, l.beB)...); err != nil {
		f.close()
		return nil, err
	}
	f.unthread = func() {
		_ = sh("ip", "netns", "exec", l.be, "sh", "-c", "echo 0 > /sys/class/net/"+l.beB+"/threaded")
	}
	return f, nil
}

// came is how many frames came round so far.
func (f *frameLoop) came() (uint64, error) {
	var vs []uint64
	if err := f.objs.LoopStats.Lookup(uint32(0), &vs); err != nil {
		return 0, err
	}
	var n uint64
	for _, v := range vs {
		n += v
	}
	return n, nil
}

// measureLoop closes the loop, seeds it with copies of frame (from the
// next source ports), and returns the frames per second that came round
// over -loop-window, after a settling time; then it opens the loop again,
// and the frames in it are dropped.
func (l l4lab) measureLoop(f *frameLoop, frame []byte) (float64, error) {
	if runtime.NumCPU() < 2 {
		return 0, errors.New("needs two CPUs: one for the load balancer, one for the loop")
	}
	if err := pinNAPI(l.lbA, runtime.NumCPU()-2); err != nil {
		return 0, err
	}
	if err := pinNAPI(l.beB, runtime.NumCPU()-1); err != nil {
		return 0, err
	}
	// The devmap resolves an ifindex in the caller's namespace.
	if err := testlab.InNS(l.gen, func() error { return f.objs.LoopOut.Put(uint32(0), uint32(f.genIdx)) }); err != nil {
		return 0, fmt.Errorf("close the loop: %w", err)
	}
	defer func() {
		_ = f.objs.LoopOut.Delete(uint32(0))
		time.Sleep(100 * time.Millisecond) // the frames in flight drop
	}()
	if err := l.seed(frame, *loopSeeds); err != nil {
		return 0, err
	}
	time.Sleep(300 * time.Millisecond)
	c0, err := f.came()
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	time.Sleep(*loopWindow)
	c1, err := f.came()
	if err != nil {
		return 0, err
	}
	if c1 == c0 {
		return 0, errNothingCounted
	}
	return float64(c1-c0) / time.Since(t0).Seconds(), nil
}

// seed sends n copies of frame, source ports 10000 on, out of the clients'
// veth through a packet socket, from the last CPU.
func (l l4lab) seed(frame []byte, n int) error {
	return onGeneratorCPU(l.gen, func() error {
		fd, _, err := packetSocket(l.genIf)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		for i := range n {
			f := append([]byte(nil), frame...)
			port := 10000 + i%*srcPorts
			f[34], f[35] = byte(port>>8), byte(port)
			for sent := false; !sent; {
				if sent, err = sendFrame(fd, f); err != nil {
					return err
				}
				if !sent {
					time.Sleep(time.Millisecond) // the socket is full: let the loop take some
				}
			}
		}
		return nil
	})
}

// passOnLBA attaches xdp_pass_all to lbA, for a contender without an XDP
// program there: nftables forwards the looped frames faster so (loop.c).
func (l l4lab) passOnLBA(f *frameLoop) (func(), error) {
	lk, err := attachXDP(l.lb, l.lbA, f.objs.XdpPassAll)
	if err != nil {
		return nil, err
	}
	return func() { lk.Close() }, nil
}
