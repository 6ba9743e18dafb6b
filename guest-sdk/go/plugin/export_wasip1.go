//go:build wasip1

// The component's exports, written to the canonical ABI by hand (wit-bindgen has no generator
// for the standard Go toolchain): cabi_realloc, processor#init and #process and their
// post-return functions, over the core module's memory. What the ABI asks of a guest, and how Go
// meets it:
//   - buffers the agent fills through cabi_realloc must not move or be freed until the call that
//     reads them ends: Go's collector never moves objects, so a buffer kept reachable from a
//     package variable stays where it is; they are released when the export returns.
//   - results must stay valid until the post-return function runs: kept reachable until then.
//   - cabi_realloc and post-return functions must not call imports (wasmtime traps: "cannot
//     leave component instance"), and Go's runtime reads the clock (an import, through the
//     adapter) when it starts a collection or returns memory to the OS. So automatic collection
//     is off and the collector runs at the end of process, where imports are allowed, once
//     enough memory has crossed the boundary since the last run.

package plugin

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"unsafe"
)

//go:wasmimport http-autoinstrument:plugin/host@0.2.0 log
func wasmLog(level uint32, message unsafe.Pointer, length uint32)

//go:wasmimport http-autoinstrument:plugin/host@0.2.0 now-unix-nanos
func wasmNow() uint64

//go:wasmimport http-autoinstrument:plugin/host@0.2.0 random-u64
func wasmRandom() uint64

func hostLog(level Level, message string) {
	wasmLog(uint32(level), unsafe.Pointer(unsafe.StringData(message)), uint32(len(message)))
}

func hostNow() uint64    { return wasmNow() }
func hostRandom() uint64 { return wasmRandom() }

// collectAfter is how many bytes may cross the boundary between collections: the instance's
// memory grows by about this much above what the plugin keeps (the agent's default cap is 64 MiB).
const collectAfter = 16 << 20

var (
	// Buffers the agent asked for with cabi_realloc during the current call, by address.
	inputs = map[uint32][]byte{}
	// What the last call returned, until its post-return function runs.
	results [][]byte
	// The return area: a result's discriminant, then its payload (two lists, or a string).
	returnArea [5]uint32
	crossed    int
	edits      Edits
)

func init() {
	debug.SetGCPercent(-1)
}

func address(b []byte) uint32 {
	if len(b) == 0 {
		return 0
	}
	return uint32(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
}

//go:wasmexport cabi_realloc
func cabiRealloc(old, oldSize, align, newSize uint32) uint32 {
	// Rounded up to 8 bytes, the allocator aligns it to 8 (what any canonical ABI type needs).
	b := make([]byte, (newSize+7)&^7+8)[:newSize]
	if prev, ok := inputs[old]; ok {
		copy(b, prev[:min(oldSize, newSize)])
		delete(inputs, old)
	}
	p := address(b[:cap(b)])
	inputs[p] = b
	crossed += int(newSize)
	return p
}

// input is the buffer at ptr (one cabi_realloc gave the agent) as a slice of n bytes.
func input(ptr, n uint32) []byte {
	if n == 0 {
		return nil
	}
	b, ok := inputs[ptr]
	if !ok || uint32(len(b)) < n {
		panic(fmt.Sprintf("the agent passed %d bytes at %#x, which no cabi_realloc gave it", n, ptr))
	}
	return b[:n]
}

func returnOk(lists ...[]byte) uint32 {
	returnArea = [5]uint32{}
	for i, l := range lists {
		returnArea[1+2*i] = address(l)
		returnArea[2+2*i] = uint32(len(l))
		crossed += len(l)
	}
	results = lists
	return uint32(uintptr(unsafe.Pointer(&returnArea)))
}

func returnErr(message string) uint32 {
	b := []byte(message)
	returnArea = [5]uint32{1, address(b), uint32(len(b))}
	results = [][]byte{b}
	return uint32(uintptr(unsafe.Pointer(&returnArea)))
}

func endCall() {
	clear(inputs)
	if crossed >= collectAfter {
		crossed = 0
		runtime.GC()
	}
}

// call runs f, turning a panic into an error: the batch gets the plugin's on-error policy
// rather than a trap, which would discard the instance.
func call(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return f()
}

//go:wasmexport http-autoinstrument:plugin/processor@0.2.0#init
func exportInit(settings, n uint32) uint32 {
	defer endCall()
	if registered == nil {
		return returnErr("no plugin registered: call plugin.Register in an init function")
	}
	if err := call(func() error { return registered.Init(input(settings, n)) }); err != nil {
		return returnErr(err.Error())
	}
	return returnOk()
}

//go:wasmexport http-autoinstrument:plugin/processor@0.2.0#process
func exportProcess(text, textLen, spans, spansLen, attributes, attributesLen, resources, resourcesLen uint32) uint32 {
	defer endCall()
	if registered == nil {
		return returnErr("no plugin registered: call plugin.Register in an init function")
	}
	batch := NewBatch(input(text, textLen), input(spans, spansLen), input(attributes, attributesLen), input(resources, resourcesLen))
	// The edit buffers are reused: the agent has copied the last call's out before this one.
	edits.ops, edits.text, edits.lastKey = edits.ops[:0], edits.text[:0], [2]uint32{}
	if err := call(func() error { return registered.Process(batch, &edits) }); err != nil {
		return returnErr(err.Error())
	}
	return returnOk(edits.ops, edits.text)
}

//go:wasmexport cabi_post_http-autoinstrument:plugin/processor@0.2.0#init
func postInit(uint32) { results = nil }

//go:wasmexport cabi_post_http-autoinstrument:plugin/processor@0.2.0#process
func postProcess(uint32) { results = nil }
