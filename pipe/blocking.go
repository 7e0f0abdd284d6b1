package pipe

import "context"

// chanNotifier turns a completion into a channel send, for callers that
// want to block a goroutine rather than park a request.
type chanNotifier chan struct{}

func (c chanNotifier) ReadDone(*ReadRequest)   { c <- struct{}{} }
func (c chanNotifier) WriteDone(*WriteRequest) { c <- struct{}{} }

// ReadBlocking reads up to max bytes as one read(2) would, waiting for a
// message until ctx ends. It returns a copy of the bytes, or io.EOF-like
// ErrClosed once the pipe is destroyed, or ctx's error (and then nothing
// was consumed).
func (r *Reader) ReadBlocking(ctx context.Context, max int) ([]byte, error) {
	parts, err := r.p.recv.readWait(ctx, r, max)
	if err != nil {
		return nil, err
	}
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out, nil
}

// readWait is one read of up to max bytes from q for r, waiting for a
// message until ctx ends; on ctx's error nothing was consumed.
func (q *Queue) readWait(ctx context.Context, r *Reader, max int) ([][]byte, error) {
	done := make(chanNotifier, 1)
	var req ReadRequest
	parts, err := q.read(r, nil, max, false, false, &req, done)
	if err == ErrParked {
		select {
		case <-done:
		case <-ctx.Done():
			if CancelRead(&req) {
				return nil, ctx.Err()
			}
			<-done
		}
		parts, err = req.Parts, req.Err
	}
	return parts, err
}

// WriteBlocking writes data as one write request, waiting for room until
// ctx ends. On ctx's error nothing was queued.
func (w *Writer) WriteBlocking(ctx context.Context, data []byte) (int, error) {
	done := make(chanNotifier, 1)
	var req WriteRequest
	n, err := w.Write(data, false, &req, done)
	if err == ErrParked {
		select {
		case <-done:
		case <-ctx.Done():
			if CancelWrite(&req) {
				return 0, ctx.Err()
			}
			<-done
		}
		n, err = req.N, req.Err
	}
	return n, err
}
