//! The Windows sensor (ETW, ferrisetw) is not written yet: see issue 4. The engine it will feed
//! lives in `userspace/src/engine/` and knows no OS.
