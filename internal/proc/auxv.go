package proc

import "encoding/binary"

// AT_NULL ends the auxiliary vector.
const atNull = 0

// ParseAuxv parses /proc/PID/auxv: (type, value) pairs of native-endian
// 64-bit words, returned flat and up to and including the AT_NULL pair, as
// PR_SET_MM_AUXV wants them back.
func ParseAuxv(b []byte) ([]uint64, error) {
	const pair = 16
	if len(b)%pair != 0 {
		return nil, parseErrorf("auxv", 0, "%d bytes is not a whole number of 16-byte pairs", len(b))
	}
	words := make([]uint64, 0, len(b)/8)
	for i := 0; i+pair <= len(b); i += pair {
		typ := binary.NativeEndian.Uint64(b[i:])
		words = append(words, typ, binary.NativeEndian.Uint64(b[i+8:]))
		if typ == atNull {
			return words, nil
		}
	}
	return nil, parseErrorf("auxv", 0, "no AT_NULL entry at the end")
}

// ReadAuxv reads /proc/PID/auxv.
func ReadAuxv(pid int) ([]uint64, error) {
	path := Path(pid, "auxv")
	b, err := readFile(path)
	if err != nil {
		return nil, err
	}
	v, err := ParseAuxv(b)
	return v, renameError(err, path)
}

// AuxvValue returns the value of entry typ (AT_*) in a vector from ParseAuxv.
func AuxvValue(auxv []uint64, typ uint64) (uint64, bool) {
	for i := 0; i+1 < len(auxv); i += 2 {
		if auxv[i] == typ {
			return auxv[i+1], true
		}
	}
	return 0, false
}
