// Row layouts of wit/plugin.wit, generated from plugin-layout/src/lib.rs by host/src/plugins/golden.rs (UPDATE_GOLDEN=1 cargo test -p http-autoinstrument golden); do not edit.

package plugin

const (
	spanRow            = 80
	spanTraceIdHigh    = 0
	spanTraceIdLow     = 8
	spanSpanId         = 16
	spanParentSpanId   = 24
	spanStart          = 32
	spanEnd            = 40
	spanName           = 48
	spanStatusMessage  = 56
	spanAttributes     = 64
	spanResource       = 72
	spanKind           = 76
	spanStatus         = 77
	spanHasParent      = 78
	attributeRow       = 24
	attributeKey       = 0
	attributeType      = 8
	attributeValue     = 16
	resourceRow        = 8
	resourceAttributes = 0
	editRow            = 24
	editSpan           = 0
	editOp             = 4
	editArg            = 5
	editText           = 8
	editValue          = 16
	typeStr            = 0
	typeInt            = 1
	typeFloat          = 2
	typeBool           = 3
	kindServer         = 0
	kindClient         = 1
	statusUnset        = 0
	statusOk           = 1
	statusError        = 2
	opDrop             = 0
	opRename           = 1
	opSetAttribute     = 2
	opRemoveAttribute  = 3
	opSetStatus        = 4
)
