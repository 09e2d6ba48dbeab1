package wasm_test

import (
	"context"
	"fmt"
	"os"

	"github.com/skiffhq/skiff/runtime/wasm"
)

// commandModule is the smallest WASI command: a _start that returns at once.
var commandModule = []byte{
	0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
	0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type section: () -> ()
	0x03, 0x02, 0x01, 0x00, // function section: one function of type 0
	0x07, 0x0a, 0x01, 0x06, '_', 's', 't', 'a', 'r', 't', 0x00, 0x00, // export it as _start
	0x0a, 0x04, 0x01, 0x02, 0x00, 0x0b, // code: no locals, end
}

// Compile a module once, then run it like a container.
func Example() {
	ctx := context.Background()
	r, err := wasm.New(ctx, wasm.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Close(ctx)

	mod, err := r.Compile(ctx, commandModule)
	if err != nil {
		fmt.Println(err)
		return
	}
	st, err := r.Run(ctx, mod, wasm.RunSpec{
		Args:             []string{"hello"},
		Env:              []string{"GREETING=hi"},
		Stdout:           os.Stdout,
		Stderr:           os.Stderr,
		MemoryLimitBytes: 64 << 20,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(st.Reason, st.Code)
	// Output: Completed 0
}
