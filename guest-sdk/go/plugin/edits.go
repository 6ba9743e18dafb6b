package plugin

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Edits are changes to a batch, applied by the agent in order after Process returns.
type Edits struct {
	ops, text []byte
	// The range of the last Set* key in text: a key set on every span is written once.
	lastKey [2]uint32
}

// Len is the number of edits recorded.
func (e *Edits) Len() int { return len(e.ops) / editRow }

// Raw is the packed form the agent receives.
func (e *Edits) Raw() (ops, text []byte) { return e.ops, e.text }

func (e *Edits) push(s string) [2]uint32 {
	r := [2]uint32{uint32(len(e.text)), uint32(len(s))}
	e.text = append(e.text, s...)
	return r
}

// keyRange is the last key's range when key is the same text, else a new copy.
func (e *Edits) keyRange(key string) [2]uint32 {
	start, n := uint64(e.lastKey[0]), uint64(e.lastKey[1])
	if start+n <= uint64(len(e.text)) && string(e.text[start:start+n]) == key {
		return e.lastKey
	}
	e.lastKey = e.push(key)
	return e.lastKey
}

func (e *Edits) row(span int, op, arg uint8, text [2]uint32, value uint64) {
	var row [editRow]byte
	binary.LittleEndian.PutUint32(row[editSpan:], uint32(span))
	row[editOp] = op
	row[editArg] = arg
	binary.LittleEndian.PutUint32(row[editText:], text[0])
	binary.LittleEndian.PutUint32(row[editText+4:], text[1])
	binary.LittleEndian.PutUint64(row[editValue:], value)
	e.ops = append(e.ops, row[:]...)
}

func (e *Edits) Drop(s Span) { e.row(s.index, opDrop, 0, [2]uint32{}, 0) }

func (e *Edits) Rename(s Span, name string) { e.row(s.index, opRename, 0, e.push(name), 0) }

// SetString sets key to a string, replacing an existing value; SetInt, SetFloat and SetBool
// likewise for the other types.
func (e *Edits) SetString(s Span, key, value string) {
	k := e.keyRange(key)
	v := e.push(value)
	e.row(s.index, opSetAttribute, typeStr, k, uint64(v[0])|uint64(v[1])<<32)
}

func (e *Edits) SetInt(s Span, key string, value int64) {
	e.row(s.index, opSetAttribute, typeInt, e.keyRange(key), uint64(value))
}

func (e *Edits) SetFloat(s Span, key string, value float64) {
	e.row(s.index, opSetAttribute, typeFloat, e.keyRange(key), math.Float64bits(value))
}

func (e *Edits) SetBool(s Span, key string, value bool) {
	e.row(s.index, opSetAttribute, typeBool, e.keyRange(key), boolBits(value))
}

// Set sets key to a Value (one read from a batch, or made with StringValue and the like).
func (e *Edits) Set(s Span, key string, value Value) {
	switch value.kind {
	case String:
		e.SetString(s, key, value.str)
	case Int:
		e.row(s.index, opSetAttribute, typeInt, e.keyRange(key), value.bits)
	case Float:
		e.row(s.index, opSetAttribute, typeFloat, e.keyRange(key), value.bits)
	case Bool:
		e.row(s.index, opSetAttribute, typeBool, e.keyRange(key), value.bits)
	default:
		e.RemoveAttribute(s, key)
	}
}

func (e *Edits) RemoveAttribute(s Span, key string) {
	e.row(s.index, opRemoveAttribute, 0, e.push(key), 0)
}

// SetStatus sets the status; the message is kept for Error.
func (e *Edits) SetStatus(s Span, code StatusCode, message string) {
	e.row(s.index, opSetStatus, uint8(code), e.push(message), 0)
}

// Edit is one edit, decoded (for tests and tools).
type Edit struct {
	Op    string // "drop", "rename", "set", "remove", "status"
	Span  int
	Text  string // the name, the key, or the status message
	Value Value  // set: the value; status: IntValue(code)
}

func (e Edit) String() string { return fmt.Sprintf("%s(%d, %q, %v)", e.Op, e.Span, e.Text, e.Value) }

// List is the edits recorded so far, decoded, in order.
func (e *Edits) List() []Edit {
	b := &Batch{text: e.text}
	var out []Edit
	for at := 0; at+editRow <= len(e.ops); at += editRow {
		row := e.ops[at : at+editRow]
		ed := Edit{Span: int(u32(row, editSpan)), Text: string(b.str(row, editText))}
		bits := u64(row, editValue)
		switch row[editOp] {
		case opDrop:
			ed.Op = "drop"
		case opRename:
			ed.Op = "rename"
		case opRemoveAttribute:
			ed.Op = "remove"
		case opSetStatus:
			ed.Op, ed.Value = "status", IntValue(int64(row[editArg]))
		default:
			ed.Op = "set"
			switch row[editArg] {
			case typeStr:
				ed.Value = StringValue(string(b.str(row, editValue)))
			case typeInt:
				ed.Value = IntValue(int64(bits))
			case typeFloat:
				ed.Value = FloatValue(math.Float64frombits(bits))
			default:
				ed.Value = BoolValue(bits != 0)
			}
		}
		out = append(out, ed)
	}
	return out
}
