"""`fto serve`'s Tinker API: the tinker SDK's training loops (forward_backward, optim_step, sample, save_state)
run on the local trainer, each training model an fto job. routes.py speaks the wire, service.py keeps the state,
wire.py reads and writes the protobuf bodies."""
