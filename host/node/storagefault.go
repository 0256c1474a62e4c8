package node

import (
	"time"

	"github.com/sottonet/sotto/core/clientproto"
)

// storageFaultHold is how long after a failed storage write (replay tags or
// a mailbox append) the node refuses its clients' packets. Packets it took
// would be dropped at their replay-tag commit or their delivery; refused,
// they stay with the client, which sends them again. Peer traffic keeps
// flowing meanwhile, so the first write that succeeds ends the refusal
// early; with none, it ends after the hold and a packet tries again.
const storageFaultHold = 2 * time.Second

// errStorageRefused is what a client's Send gets while storage fails: busy
// (retry later), with a reason the client can log. It names no path or
// plugin error (those stay in the node's log).
var errStorageRefused = &clientproto.Error{Code: clientproto.CodeBusy, Message: "storage unavailable (full or failing); packet not taken, send it again later"}

// storageWrote records the outcome of a storage write.
func (n *Node) storageWrote(err error) {
	if err != nil {
		if n.storageFault.Swap(time.Now().UnixNano()) == 0 {
			n.logLimited("storage-fault", "storage writes fail: refusing clients' packets until one succeeds", "err", err)
		}
		return
	}
	if n.storageFault.Load() != 0 && n.storageFault.Swap(0) != 0 {
		n.logLimited("storage-ok", "storage writes succeed again: taking clients' packets")
	}
}

// storageRefuses reports whether a client's packet must be refused because
// a storage write failed within storageFaultHold.
func (n *Node) storageRefuses(now time.Time) bool {
	at := n.storageFault.Load()
	return at != 0 && now.Sub(time.Unix(0, at)) < storageFaultHold
}
