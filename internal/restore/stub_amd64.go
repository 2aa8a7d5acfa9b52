package restore

import "debug/elf"

const stubMachine = elf.EM_X86_64

// stubCode is the whole program. It needs no stack and touches no memory:
//
//	park:   mov  eax, 34     ; pause
//	        syscall
//	        jmp  park
//	gadget: syscall          ; injected syscalls run here
//	        int3             ; a task that runs on from here (a clone whose
//	                         ; registers were never set) dies of SIGTRAP
var stubCode = []byte{
	0xb8, 0x22, 0x00, 0x00, 0x00, // mov eax, SYS_pause
	0x0f, 0x05, // syscall
	0xeb, 0xf7, // jmp park (-9)
	0x0f, 0x05, // syscall
	0xcc, // int3
}

const (
	stubParkOff   = 0 // entry point, within stubCode
	stubParkedOff = 7 // where a task parked in pause sits (after its syscall)
	stubGadgetOff = 9 // the syscall instruction for injections
	stubSysPause  = 34
)
