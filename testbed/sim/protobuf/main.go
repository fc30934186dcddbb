// protobuf-json converts Kubernetes protobuf request bodies (the "k8s\x00" envelope around a
// runtime.Unknown) to JSON for the simulated API server, with the type schemas of k8s.io/api as
// registered in client-go's scheme: nothing of the schemas is copied into this repository.
//
// Protocol on stdin/stdout, one request at a time, in order:
//
//	request:  4-byte big-endian length, then the protobuf body
//	response: 1 status byte (0 ok, 1 error), 4-byte big-endian length, then the JSON object
//	          (ok) or a one-line error message (error)
//
// It exits 0 when stdin closes.
package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/client-go/kubernetes/scheme"
)

const maxBody = 64 << 20

var decoder = protobuf.NewSerializer(scheme.Scheme, scheme.Scheme)

func toJSON(body []byte) ([]byte, error) {
	obj, gvk, err := decoder.Decode(body, nil, nil)
	if err != nil {
		return nil, err
	}
	// The protobuf payload carries its type only in the envelope: put it back into the object.
	obj.GetObjectKind().SetGroupVersionKind(*gvk)
	if _, ok := obj.(*runtime.Unknown); ok {
		return nil, fmt.Errorf("no type registered for %s", gvk)
	}
	return json.Marshal(obj)
}

func main() {
	in := bufio.NewReader(os.Stdin)
	out := bufio.NewWriter(os.Stdout)
	header := make([]byte, 4)
	for {
		if _, err := io.ReadFull(in, header); err != nil {
			if err == io.EOF {
				return
			}
			fmt.Fprintf(os.Stderr, "protobuf-json: reading a request: %v\n", err)
			os.Exit(1)
		}
		size := binary.BigEndian.Uint32(header)
		if size > maxBody {
			fmt.Fprintf(os.Stderr, "protobuf-json: request of %d bytes is over the %d byte limit\n", size, maxBody)
			os.Exit(1)
		}
		body := make([]byte, size)
		if _, err := io.ReadFull(in, body); err != nil {
			fmt.Fprintf(os.Stderr, "protobuf-json: reading a request body: %v\n", err)
			os.Exit(1)
		}
		status := byte(0)
		payload, err := toJSON(body)
		if err != nil {
			status, payload = 1, []byte(err.Error())
		}
		reply := make([]byte, 5)
		reply[0] = status
		binary.BigEndian.PutUint32(reply[1:], uint32(len(payload)))
		out.Write(reply)
		out.Write(payload)
		if err := out.Flush(); err != nil {
			os.Exit(1)
		}
	}
}
