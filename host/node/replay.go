package node

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/sottonet/sotto/core/epoch"
	"github.com/sottonet/sotto/interfaces"
)

// hotSetCap bounds each epoch's in-memory replay set (about 50 bytes an
// entry). Past it, tags are still checked and recorded in storage, which
// stays the authority; the in-memory set only spares storage the replays it
// already knows.
const hotSetCap = 1 << 18

// maxReplayBatch bounds one InsertReplayTags call.
const maxReplayBatch = 512

// replayCommits is how many group commits of replay tags may be in flight
// at once. Commits run on their own goroutine(s); the replay loop takes the
// next batch once a commit is free, so the packets that arrived during a
// commit all go into the next one. One is best on the node benchmark
// (docs/BENCHMARKS.md, "Node"): with 2 or 4, Badger queues the commits
// behind each other's fsync, each takes longer and the added delay grows;
// one committer goroutine beside the replay loop beat committing on the
// loop itself (throughput +25%, added delay p99 about a third).
const replayCommits = 1

// commitJob is one group commit: tags of one epoch and their packets. The
// replay loop owns a job until it hands it to a committer, which gives it
// back when the commit is done; jobs are reused, so a commit allocates
// nothing in the node.
type commitJob struct {
	epoch epoch.Epoch
	tags  []interfaces.ReplayTag
	group []*packet
}

// replayLoop is the replay check. It is one goroutine, so the in-memory sets
// need no lock, and each round it takes every packet waiting (up to
// maxReplayBatch) and hands its tags, grouped by epoch, to a committer: the
// tags go to storage in one durable commit (group commit) and only then are
// the packets released to the scheduler. A packet whose tag could not be
// recorded is dropped, never released unrecorded. replayLoop returns when
// n.replay is closed and every commit it started is done.
func (n *Node) replayLoop() {
	free := make(chan *commitJob, replayCommits)
	jobs := make(chan *commitJob, replayCommits)
	for range replayCommits {
		free <- &commitJob{
			tags:  make([]interfaces.ReplayTag, 0, maxReplayBatch),
			group: make([]*packet, 0, maxReplayBatch),
		}
	}
	var committers sync.WaitGroup
	for range replayCommits {
		committers.Go(func() {
			for j := range jobs {
				n.commitTags(j.epoch, j.tags, j.group)
				clear(j.group) // the packets are the scheduler's now
				free <- j
			}
		})
	}
	defer committers.Wait()
	defer close(jobs)

	hot := map[epoch.Epoch]map[[32]byte]struct{}{}
	batch := make([]*packet, 0, maxReplayBatch)
	for p := range n.replay {
		// Wait for a free commit first: packets that arrive meanwhile join
		// this batch instead of waiting behind it.
		j := <-free
		batch = append(batch[:0], p)
	fill:
		for len(batch) < maxReplayBatch {
			select {
			case q, ok := <-n.replay:
				if !ok {
					break fill
				}
				batch = append(batch, q)
			default:
				break fill
			}
		}
		// Group by epoch (almost always one), checking the hot sets.
		for len(batch) > 0 {
			if j == nil {
				j = <-free
			}
			e := batch[0].epoch
			set := hot[e]
			if set == nil {
				set = make(map[[32]byte]struct{}, 1024)
				hot[e] = set
				n.pruneHot(hot)
			}
			j.epoch, j.tags, j.group = e, j.tags[:0], j.group[:0]
			rest := batch[:0]
			for _, q := range batch {
				if q.epoch != e {
					rest = append(rest, q)
					continue
				}
				if _, seen := set[q.tag]; seen {
					n.m.replayHits.Inc()
					n.logLimited("replay", "replayed packet dropped", "epoch", e)
					n.drop(q, dropReplay)
					continue
				}
				if len(set) < hotSetCap {
					set[q.tag] = struct{}{}
				}
				j.tags = append(j.tags, q.tag)
				j.group = append(j.group, q)
			}
			batch = rest
			if len(j.group) > 0 {
				jobs <- j
				j = nil
			}
		}
		if j != nil {
			free <- j
		}
	}
}

// pruneHot forgets the in-memory sets of epochs whose keys are gone.
func (n *Node) pruneHot(hot map[epoch.Epoch]map[[32]byte]struct{}) {
	now := time.Now()
	for e := range hot {
		if n.clk.Expired(e, now) {
			delete(hot, e)
		}
	}
}

// commitTags records tags in storage and releases the packets of group whose
// tags were new to the scheduler. It runs on a committer goroutine; with
// replayCommits > 1 several run at once, which interfaces.ReplayTags
// allows (a tag in two concurrent batches is new to exactly one).
func (n *Node) commitTags(e epoch.Epoch, tags []interfaces.ReplayTag, group []*packet) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t0 := time.Now()
	resp, err := n.opts.Storage.InsertReplayTags(ctx, &interfaces.InsertReplayTagsRequest{Epoch: e, Tags: tags})
	cancel()
	n.m.pluginCall.WithLabelValues("storage", "insert_replay_tags").Observe(time.Since(t0).Seconds())
	if err == nil && (resp == nil || len(resp.Seen) != len(tags)) {
		err = fmt.Errorf("%w: wrong number of answers for %d tags", interfaces.ErrMalformedReply, len(tags))
	}
	n.storageWrote(err)
	if err != nil {
		n.logLimited("replay-store", "replay tags not recorded; packets dropped", "count", len(group), "err", err)
		for _, q := range group {
			n.drop(q, dropReplayErr)
		}
		return
	}
	now := time.Now()
	for i, q := range group {
		if resp.Seen[i] {
			n.m.replayHits.Inc()
			n.logLimited("replay", "replayed packet dropped", "epoch", e)
			n.drop(q, dropReplay)
			continue
		}
		if !q.recv.Add(q.delay).After(now) {
			// Its delay is over already (a NodeDelay shorter than the
			// commit): the scheduler would release it at once, so
			// release it here and spare it that hand-off.
			n.release(q)
			continue
		}
		n.schedule(q)
	}
}
