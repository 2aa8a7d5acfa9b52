package images

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The JSON form of an image follows crit: {"magic": "CORE", "entries": [...]}
// with one object per entry keyed by proto field names, and "extra" holding
// the raw bytes after an entry (base64; for TCP streams {"inq", "outq"}).
// gockpt adds keys crit lacks so that encode(decode(x)) gives x back:
//   - "raw" replaces "entries" for magic-less and opaque images;
//   - "__raw" holds an entry's exact bytes when its message alone would not
//     encode back to them (duplicate fields, invalid UTF-8, no schema);
//     encode uses them unless the entry's other keys were edited;
//   - "__unknown" holds fields the schema does not know.
const (
	keyExtra   = "extra"
	keyRaw     = "__raw"
	keyUnknown = "__unknown"
)

var marshalOpts = proto.MarshalOptions{Deterministic: true, AllowPartial: true}

// DecodeJSON reads the image r and writes its JSON form to w. pretty
// indents, and prints fields the way crit --pretty does: addresses in hex,
// flags by name, devices as major:minor, IP addresses as text.
func DecodeJSON(r *Reader, w io.Writer, pretty bool) error {
	var b []byte
	b = append(b, `{"magic":`...)
	b = appendString(b, r.Kind().Name)
	k := r.Kind()
	if k.Layout == LayoutRaw || k.Opaque {
		data, err := r.ReadAll()
		if err != nil {
			return err
		}
		b = append(b, `,"raw":`...)
		b = appendString(b, base64.StdEncoding.EncodeToString(data))
	} else {
		b = append(b, `,"entries":[`...)
		for i := 0; ; i++ {
			e, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return err
			}
			if i > 0 {
				b = append(b, ',')
			}
			if b, err = appendEntry(b, k, e, pretty); err != nil {
				return fmt.Errorf("%s: entry %d at byte %d: %w", r.Name(), i, e.Offset, err)
			}
		}
		b = append(b, ']')
	}
	b = append(b, '}')
	if pretty {
		var out bytes.Buffer
		if err := json.Indent(&out, b, "", "    "); err != nil {
			return fmt.Errorf("%s: internal error formatting JSON: %w", r.Name(), err)
		}
		b = out.Bytes()
	}
	b = append(b, '\n')
	_, err := w.Write(b)
	return err
}

func appendEntry(b []byte, k *Kind, e *Entry, pretty bool) ([]byte, error) {
	b = append(b, '{')
	if e.Msg == nil {
		b = append(b, `"__raw":`...)
		b = appendString(b, base64.StdEncoding.EncodeToString(e.Raw))
	} else {
		obj := appendMessageFields(nil, e.Msg.ProtoReflect(), pretty, false)
		b = append(b, obj...)
		if !roundTrips(obj, e) {
			if len(obj) > 0 {
				b = append(b, ',')
			}
			b = append(b, `"__raw":`...)
			b = appendString(b, base64.StdEncoding.EncodeToString(e.Raw))
		}
	}
	if e.Extra != nil {
		if len(b) > 1 {
			b = append(b, ',')
		}
		b = append(b, `"extra":`...)
		if k == KindTCPStream {
			t := e.Msg.ProtoReflect()
			inq := int(t.Get(t.Descriptor().Fields().ByName("inq_len")).Uint())
			b = append(b, `{"inq":`...)
			b = appendString(b, base64.StdEncoding.EncodeToString(e.Extra[:inq]))
			b = append(b, `,"outq":`...)
			b = appendString(b, base64.StdEncoding.EncodeToString(e.Extra[inq:]))
			b = append(b, '}')
		} else {
			b = appendString(b, base64.StdEncoding.EncodeToString(e.Extra))
		}
	}
	return append(b, '}'), nil
}

// roundTrips tells whether the rendered fields parse back to exactly the
// entry's bytes.
func roundTrips(obj []byte, e *Entry) bool {
	m := e.Msg.ProtoReflect().New()
	var fields map[string]any
	if err := unmarshalJSON(append(append([]byte{'{'}, obj...), '}'), &fields); err != nil {
		return false
	}
	if err := messageFromJSON(m, fields); err != nil {
		return false
	}
	got, err := marshalOpts.Marshal(m.Interface())
	return err == nil && bytes.Equal(got, e.Raw)
}

func appendString(b []byte, s string) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	// Invalid UTF-8 prints as U+FFFD either way; converting first makes the
	// output the same as for a string that holds U+FFFD, which decode's
	// edit check relies on.
	_ = enc.Encode(strings.ToValidUTF8(s, "\uFFFD")) // a string always encodes
	return append(b, bytes.TrimRight(buf.Bytes(), "\n")...)
}

// appendMessageFields renders m's fields as `"name":value,...` without braces.
func appendMessageFields(b []byte, m protoreflect.Message, pretty, hex bool) []byte {
	fds := m.Descriptor().Fields()
	idx := make([]int, 0, fds.Len())
	for i := 0; i < fds.Len(); i++ {
		if m.Has(fds.Get(i)) {
			idx = append(idx, i)
		}
	}
	// crit lists fields by number.
	sort.Slice(idx, func(a, c int) bool { return fds.Get(idx[a]).Number() < fds.Get(idx[c]).Number() })
	first := true
	for _, i := range idx {
		fd := fds.Get(i)
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendString(b, string(fd.Name()))
		b = append(b, ':')
		opts := critOpts(fd)
		fhex := hex || opts.GetHex()
		v := m.Get(fd)
		if fd.IsList() {
			l := v.List()
			if pretty && opts.GetIpadd() && (l.Len() == 1 || l.Len() == 4) {
				b = append(b, '[')
				words := make([]uint32, l.Len())
				for j := range words {
					words[j] = uint32(l.Get(j).Uint())
				}
				b = appendString(b, ipString(words))
				b = append(b, ']')
				continue
			}
			b = append(b, '[')
			for j := 0; j < l.Len(); j++ {
				if j > 0 {
					b = append(b, ',')
				}
				b = appendValue(b, fd, opts, l.Get(j), pretty, fhex)
			}
			b = append(b, ']')
			continue
		}
		b = appendValue(b, fd, opts, v, pretty, fhex)
	}
	if u := m.GetUnknown(); len(u) > 0 {
		if !first {
			b = append(b, ',')
		}
		b = append(b, `"__unknown":`...)
		b = appendString(b, base64.StdEncoding.EncodeToString(u))
	}
	return b
}

func appendValue(b []byte, fd protoreflect.FieldDescriptor, opts interface {
	GetDev() bool
	GetOdev() bool
	GetFlags() string
	GetDict() string
}, v protoreflect.Value, pretty, hex bool) []byte {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		b = append(b, '{')
		b = appendMessageFields(b, v.Message(), pretty, hex)
		return append(b, '}')
	case protoreflect.BytesKind:
		return appendString(b, base64.StdEncoding.EncodeToString(v.Bytes()))
	case protoreflect.StringKind:
		return appendString(b, v.String())
	case protoreflect.BoolKind:
		return strconv.AppendBool(b, v.Bool())
	case protoreflect.EnumKind:
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			return appendString(b, string(ev.Name()))
		}
		return strconv.AppendInt(b, int64(v.Enum()), 10)
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		f := v.Float()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return appendString(b, strconv.FormatFloat(f, 'g', -1, 64))
		}
		return strconv.AppendFloat(b, f, 'g', -1, 64)
	}
	signed := isSigned(fd.Kind())
	var u uint64
	var i int64
	if signed {
		i = v.Int()
	} else {
		u = v.Uint()
	}
	if pretty {
		switch {
		case hex:
			if signed {
				if i < 0 {
					return appendString(b, fmt.Sprintf("-%#x", uint64(-i)))
				}
				return appendString(b, fmt.Sprintf("%#x", i))
			}
			return appendString(b, fmt.Sprintf("%#x", u))
		case !signed && opts.GetDev():
			return appendString(b, devString(u, opts.GetOdev()))
		case !signed && opts.GetFlags() != "":
			return appendString(b, FlagString(opts.GetFlags(), u))
		case !signed && opts.GetDict() != "":
			if name, ok := dictTables[opts.GetDict()][string(fd.Name())][u]; ok {
				return appendString(b, name)
			}
		}
	}
	if signed {
		return strconv.AppendInt(b, i, 10)
	}
	return strconv.AppendUint(b, u, 10)
}

func isSigned(k protoreflect.Kind) bool {
	switch k {
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return true
	}
	return false
}

func bitSize(k protoreflect.Kind) int {
	switch k {
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return 32
	}
	return 64
}

// CRIU stores addresses as the u32 words of the in-memory (network order)
// address, read on a little-endian machine.
func ipString(words []uint32) string {
	var a [16]byte
	for j, w := range words {
		binary.LittleEndian.PutUint32(a[4*j:], w)
	}
	if len(words) == 1 {
		return netip.AddrFrom4([4]byte(a[:4])).String()
	}
	return netip.AddrFrom16(a).String()
}

func ipWords(s string) ([]uint32, error) {
	addr, err := netip.ParseAddr(s)
	if err != nil {
		return nil, err
	}
	var raw []byte
	if addr.Is4() {
		a := addr.As4()
		raw = a[:]
	} else {
		a := addr.As16()
		raw = a[:]
	}
	var out []uint32
	for j := 0; j < len(raw); j += 4 {
		out = append(out, binary.LittleEndian.Uint32(raw[j:]))
	}
	return out, nil
}

func unmarshalJSON(data []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	if err := d.Decode(v); err != nil {
		return err
	}
	if _, err := d.Token(); err != io.EOF {
		return fmt.Errorf("unexpected data after the JSON value")
	}
	return nil
}

// messageFromJSON fills m from a decoded JSON object, accepting both plain
// and pretty forms.
func messageFromJSON(m protoreflect.Message, obj map[string]any) error {
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fds := m.Descriptor().Fields()
	for _, key := range keys {
		val := obj[key]
		if key == keyUnknown {
			s, ok := val.(string)
			u, err := base64.StdEncoding.DecodeString(stripSpace(s))
			if !ok || err != nil {
				return fmt.Errorf("%s: want base64 text", key)
			}
			m.SetUnknown(u)
			continue
		}
		fd := fds.ByName(protoreflect.Name(key))
		if fd == nil {
			return fmt.Errorf("%s has no field %q", m.Descriptor().Name(), key)
		}
		if err := fieldFromJSON(m, fd, val); err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
	}
	return nil
}

func fieldFromJSON(m protoreflect.Message, fd protoreflect.FieldDescriptor, val any) error {
	if fd.IsMap() {
		return fmt.Errorf("map fields are not supported")
	}
	if !fd.IsList() {
		if fd.Message() != nil {
			obj, ok := val.(map[string]any)
			if !ok {
				return fmt.Errorf("want an object")
			}
			return messageFromJSON(m.Mutable(fd).Message(), obj)
		}
		v, err := scalarFromJSON(fd, val)
		if err != nil {
			return err
		}
		m.Set(fd, v)
		return nil
	}
	arr, ok := val.([]any)
	if !ok {
		return fmt.Errorf("want a list")
	}
	l := m.Mutable(fd).List()
	if critOpts(fd).GetIpadd() && len(arr) == 1 {
		if s, ok := arr[0].(string); ok {
			words, err := ipWords(s)
			if err != nil {
				return err
			}
			for _, w := range words {
				l.Append(protoreflect.ValueOfUint32(w))
			}
			return nil
		}
	}
	for j, x := range arr {
		if fd.Message() != nil {
			obj, ok := x.(map[string]any)
			if !ok {
				return fmt.Errorf("[%d]: want an object", j)
			}
			e := l.NewElement()
			if err := messageFromJSON(e.Message(), obj); err != nil {
				return fmt.Errorf("[%d]: %w", j, err)
			}
			l.Append(e)
			continue
		}
		v, err := scalarFromJSON(fd, x)
		if err != nil {
			return fmt.Errorf("[%d]: %w", j, err)
		}
		l.Append(v)
	}
	return nil
}

func stripSpace(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == ' ' || r == '\t' {
			return -1
		}
		return r
	}, s)
}

func scalarFromJSON(fd protoreflect.FieldDescriptor, val any) (protoreflect.Value, error) {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		if v, ok := val.(bool); ok {
			return protoreflect.ValueOfBool(v), nil
		}
		return protoreflect.Value{}, fmt.Errorf("want true or false")
	case protoreflect.StringKind:
		if v, ok := val.(string); ok {
			return protoreflect.ValueOfString(v), nil
		}
		return protoreflect.Value{}, fmt.Errorf("want a string")
	case protoreflect.BytesKind:
		s, ok := val.(string)
		if !ok {
			return protoreflect.Value{}, fmt.Errorf("want base64 text")
		}
		v, err := base64.StdEncoding.DecodeString(stripSpace(s))
		if err != nil {
			return protoreflect.Value{}, fmt.Errorf("want base64 text: %v", err)
		}
		return protoreflect.ValueOfBytes(v), nil
	case protoreflect.EnumKind:
		switch v := val.(type) {
		case string:
			ev := fd.Enum().Values().ByName(protoreflect.Name(v))
			if ev == nil {
				return protoreflect.Value{}, fmt.Errorf("%q is not a value of %s", v, fd.Enum().Name())
			}
			return protoreflect.ValueOfEnum(ev.Number()), nil
		case json.Number:
			n, err := strconv.ParseInt(v.String(), 10, 32)
			if err != nil {
				return protoreflect.Value{}, fmt.Errorf("%s is not an enum number", v)
			}
			return protoreflect.ValueOfEnum(protoreflect.EnumNumber(n)), nil
		}
		return protoreflect.Value{}, fmt.Errorf("want an enum name")
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		var f float64
		var err error
		switch v := val.(type) {
		case json.Number:
			f, err = v.Float64()
		case string:
			f, err = strconv.ParseFloat(v, 64)
		default:
			err = fmt.Errorf("want a number")
		}
		if err != nil {
			return protoreflect.Value{}, err
		}
		if fd.Kind() == protoreflect.FloatKind {
			return protoreflect.ValueOfFloat32(float32(f)), nil
		}
		return protoreflect.ValueOfFloat64(f), nil
	}
	bits := bitSize(fd.Kind())
	var text string
	base := 10
	switch v := val.(type) {
	case json.Number:
		text = v.String()
	case string:
		opts := critOpts(fd)
		switch {
		case strings.Contains(v, ":") && opts.GetDev():
			u, err := parseDev(v, opts.GetOdev())
			if err != nil {
				return protoreflect.Value{}, err
			}
			return intValue(fd, u, 0, false)
		case opts.GetFlags() != "" && !strings.HasPrefix(strings.TrimSpace(v), "-"):
			u, err := parseFlags(opts.GetFlags(), v, bits)
			if err != nil {
				return protoreflect.Value{}, err
			}
			return intValue(fd, u, 0, false)
		case opts.GetDict() != "":
			for n, name := range dictTables[opts.GetDict()][string(fd.Name())] {
				if name == v {
					return intValue(fd, n, 0, false)
				}
			}
		}
		text, base = v, 0
	default:
		return protoreflect.Value{}, fmt.Errorf("want a number")
	}
	if isSigned(fd.Kind()) {
		n, err := strconv.ParseInt(text, base, bits)
		if err != nil {
			return protoreflect.Value{}, fmt.Errorf("%s is not a %d-bit signed integer", text, bits)
		}
		return intValue(fd, 0, n, true)
	}
	n, err := strconv.ParseUint(text, base, bits)
	if err != nil {
		return protoreflect.Value{}, fmt.Errorf("%s is not a %d-bit unsigned integer", text, bits)
	}
	return intValue(fd, n, 0, false)
}

func intValue(fd protoreflect.FieldDescriptor, u uint64, i int64, signed bool) (protoreflect.Value, error) {
	if !signed {
		if isSigned(fd.Kind()) {
			i = int64(u)
		}
	}
	switch fd.Kind() {
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		if i < math.MinInt32 || i > math.MaxInt32 {
			return protoreflect.Value{}, fmt.Errorf("%d does not fit in 32 bits", i)
		}
		return protoreflect.ValueOfInt32(int32(i)), nil
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return protoreflect.ValueOfInt64(i), nil
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		if u > math.MaxUint32 {
			return protoreflect.Value{}, fmt.Errorf("%d does not fit in 32 bits", u)
		}
		return protoreflect.ValueOfUint32(uint32(u)), nil
	}
	return protoreflect.ValueOfUint64(u), nil
}

// EncodeJSON reads the JSON form of an image from r and writes the image to
// w. name is used in errors. The output is byte-for-byte the image the JSON
// was decoded from, unless the JSON was edited.
func EncodeJSON(r io.Reader, w io.Writer, name string) error {
	data, err := io.ReadAll(io.LimitReader(r, 4*MaxExtraSize))
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	var img struct {
		Magic   string            `json:"magic"`
		Entries []json.RawMessage `json:"entries"`
		Raw     *string           `json:"raw"`
	}
	if err := json.Unmarshal(data, &img); err != nil {
		return fmt.Errorf("%s: not the JSON form of an image: %w", name, err)
	}
	k, ok := KindByName(img.Magic)
	if !ok {
		return fmt.Errorf("%s: unknown magic %q: want a name such as CORE or PAGEMAP", name, img.Magic)
	}
	iw, err := NewWriter(w, name, k)
	if err != nil {
		return err
	}
	if k.Layout == LayoutRaw || k.Opaque {
		if img.Raw == nil {
			return fmt.Errorf("%s: %s images need a \"raw\" key with the data in base64", name, k.Name)
		}
		b, err := base64.StdEncoding.DecodeString(stripSpace(*img.Raw))
		if err != nil {
			return fmt.Errorf("%s: raw: want base64 text: %w", name, err)
		}
		iw.Write(b)
		return iw.Flush()
	}
	var first proto.Message
	for i, raw := range img.Entries {
		if i > 0 && k.extra != nil && first != nil {
			if _, rest := k.extra(0, first, first); rest {
				return fmt.Errorf("%s: entry %d: nothing can follow entry 0, whose data runs to the end of the file", name, i)
			}
		}
		msg, extra, err := entryFromJSON(k, i, first, raw)
		if err != nil {
			return fmt.Errorf("%s: entry %d: %w", name, i, err)
		}
		if i == 0 {
			first = msg
		}
		if err := iw.WriteRawEntry(extra.raw); err != nil {
			return err
		}
		iw.Write(extra.data)
	}
	return iw.Flush()
}

type encodedEntry struct {
	raw  []byte // the message bytes
	data []byte // the payload after it
}

func entryFromJSON(k *Kind, i int, first proto.Message, data json.RawMessage) (proto.Message, encodedEntry, error) {
	var out encodedEntry
	var obj map[string]any
	if err := unmarshalJSON(data, &obj); err != nil {
		return nil, out, fmt.Errorf("want an object: %w", err)
	}
	var rawBytes []byte
	if s, ok := obj[keyRaw]; ok {
		str, ok := s.(string)
		b, err := base64.StdEncoding.DecodeString(stripSpace(str))
		if !ok || err != nil {
			return nil, out, fmt.Errorf("%s: want base64 text", keyRaw)
		}
		rawBytes = b
		delete(obj, keyRaw)
	}
	extraVal, hasExtra := obj[keyExtra]
	delete(obj, keyExtra)

	m := k.entryMessage(i)
	if m == nil {
		if rawBytes == nil {
			return nil, out, fmt.Errorf("gockpt has no schema for %s images: the entry needs %q", k.Name, keyRaw)
		}
		out.raw = rawBytes
		return nil, out, nil
	}
	if err := messageFromJSON(m.ProtoReflect(), obj); err != nil {
		return nil, out, err
	}
	b, err := marshalOpts.Marshal(m)
	if err != nil {
		return nil, out, err
	}
	out.raw = b
	if rawBytes != nil && !bytes.Equal(rawBytes, b) {
		// Keep the original bytes unless the fields say something else.
		orig := m.ProtoReflect().New().Interface()
		if err := (proto.UnmarshalOptions{AllowPartial: true}).Unmarshal(rawBytes, orig); err == nil &&
			bytes.Equal(appendMessageFields(nil, orig.ProtoReflect(), false, false),
				appendMessageFields(nil, m.ProtoReflect(), false, false)) {
			out.raw = rawBytes
			m = orig
		}
	}
	if first == nil {
		first = m
	}
	if k.extra == nil {
		if hasExtra {
			return nil, out, fmt.Errorf("%s images carry no %q", k.Name, keyExtra)
		}
		return m, out, nil
	}
	n, rest := k.extra(i, first, m)
	if k == KindTCPStream {
		q, ok := extraVal.(map[string]any)
		if !ok && (n > 0 || hasExtra) {
			return nil, out, fmt.Errorf("%q: want {\"inq\": base64, \"outq\": base64}", keyExtra)
		}
		t := m.(interface {
			GetInqLen() uint32
			GetOutqLen() uint32
		})
		for _, part := range []struct {
			key  string
			want uint32
		}{{"inq", t.GetInqLen()}, {"outq", t.GetOutqLen()}} {
			s, _ := q[part.key].(string)
			b, err := base64.StdEncoding.DecodeString(stripSpace(s))
			if err != nil {
				return nil, out, fmt.Errorf("%s.%s: want base64 text", keyExtra, part.key)
			}
			if uint32(len(b)) != part.want {
				return nil, out, fmt.Errorf("%s.%s holds %d bytes but the entry says %d", keyExtra, part.key, len(b), part.want)
			}
			out.data = append(out.data, b...)
		}
		return m, out, nil
	}
	var payload []byte
	if hasExtra {
		s, ok := extraVal.(string)
		b, err := base64.StdEncoding.DecodeString(stripSpace(s))
		if !ok || err != nil {
			return nil, out, fmt.Errorf("%s: want base64 text", keyExtra)
		}
		payload = b
	}
	if n < 0 && hasExtra {
		return nil, out, fmt.Errorf("this entry carries no %q", keyExtra)
	}
	if !rest && n >= 0 && int64(len(payload)) != n {
		return nil, out, fmt.Errorf("%s holds %d bytes but the entry says %d follow", keyExtra, len(payload), n)
	}
	out.data = payload
	return m, out, nil
}
