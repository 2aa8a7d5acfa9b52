package parasite

import (
	"testing"
)

// FuzzReplies feeds arbitrary packets to every decoder of what the blob
// sends back. The blob runs inside the target, which gockpt does not trust:
// a garbled or hostile reply must give an error, never a panic.
func FuzzReplies(f *testing.F) {
	for _, c := range []command{cmdSigactions, cmdItimers, cmdPosixTimers, cmdMisc} {
		hdr := make([]byte, hdrSize)
		le.PutUint32(hdr, protoMagic)
		le.PutUint16(hdr[4:], protoVersion)
		le.PutUint16(hdr[6:], uint16(c))
		f.Add(uint16(c), hdr, 1)
	}
	f.Add(uint16(cmdMisc), make([]byte, 100), 0)
	f.Fuzz(func(t *testing.T, cmd uint16, pkt []byte, n int) {
		payload, _, err := decodeReply(command(cmd), pkt)
		if err != nil {
			payload = pkt // the decoders below must cope on their own too
		}
		decodeSigactions(payload)
		decodeItimers(payload)
		decodePosixTimers(payload, n%1024)
		decodeMisc(payload)
	})
}
