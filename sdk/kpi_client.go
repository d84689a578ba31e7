package sdk

import (
	"context"
	"fmt"
	"syscall"

	pb "github.com/kldsim/kldsim/sdk/proto"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// kpiClient is the KPI a module sees inside a plugin process. It is bound
// to one host->plugin call: every callback carries that call's token, so
// the host dispatches it to the KPI the kernel bound for the call (module,
// entry, curvnet). Vnet and Module are answered locally.
type kpiClient struct {
	c      pb.KPIClient // nil when the host offered no KPI
	token  uint64
	vnet   string
	module string
}

var _ KPI = (*kpiClient)(nil)

func (k *kpiClient) Vnet() string   { return k.vnet }
func (k *kpiClient) Module() string { return k.module }

// invoke makes one KPI callback. A gRPC status error means the host is
// unreachable (or the call's deadline passed), never a refusal: refusals
// come back in the response's Error.
func invoke[Req, Resp any](ctx context.Context, k *kpiClient, op string,
	rpc func(pb.KPIClient, context.Context, Req, ...grpc.CallOption) (Resp, error), req Req) (Resp, error) {
	var zero Resp
	if k.c == nil {
		return zero, fmt.Errorf("KPI %s: no connection to the kernel: %w", op, syscall.ENOTCONN)
	}
	resp, err := rpc(k.c, ctx, req)
	if err != nil {
		errno := syscall.EIO
		if status.Code(err) == codes.DeadlineExceeded {
			errno = syscall.ETIMEDOUT
		}
		return zero, fmt.Errorf("KPI %s: kernel unreachable (%s): %w", op, status.Convert(err).Message(), errno)
	}
	return resp, nil
}

func objOf(r *pb.ObjResponse, err error) (ObjID, error) {
	if err != nil {
		return 0, err
	}
	return ObjID(r.GetId()), r.GetError().Err()
}

func resultOf(r *pb.Result, err error) error {
	if err != nil {
		return err
	}
	return r.GetError().Err()
}

func ifInfoOf(r *pb.IfInfoResponse, err error) (IfInfo, error) {
	if err != nil {
		return IfInfo{}, err
	}
	return ifInfoFromPB(r.GetInfo()), r.GetError().Err()
}

func (k *kpiClient) name(s string) *pb.NameRequest { return &pb.NameRequest{Token: k.token, Name: s} }
func (k *kpiClient) obj(id ObjID) *pb.ObjRequest {
	return &pb.ObjRequest{Token: k.token, Id: uint64(id)}
}
func (k *kpiClient) ref(holder, target ObjID) *pb.RefRequest {
	return &pb.RefRequest{Token: k.token, Holder: uint64(holder), Target: uint64(target)}
}
func (k *kpiClient) hook(head, hook string) *pb.HookRequest {
	return &pb.HookRequest{Token: k.token, Head: head, Hook: hook}
}

// Memory

func (k *kpiClient) Malloc(ctx context.Context, name string) (ObjID, error) {
	return objOf(invoke(ctx, k, "Malloc", pb.KPIClient.Malloc, k.name(name)))
}
func (k *kpiClient) Free(ctx context.Context, id ObjID) error {
	return resultOf(invoke(ctx, k, "Free", pb.KPIClient.Free, k.obj(id)))
}
func (k *kpiClient) Use(ctx context.Context, id ObjID) error {
	return resultOf(invoke(ctx, k, "Use", pb.KPIClient.Use, k.obj(id)))
}
func (k *kpiClient) Hold(ctx context.Context, holder, target ObjID) error {
	return resultOf(invoke(ctx, k, "Hold", pb.KPIClient.Hold, k.ref(holder, target)))
}
func (k *kpiClient) Drop(ctx context.Context, holder, target ObjID) error {
	return resultOf(invoke(ctx, k, "Drop", pb.KPIClient.Drop, k.ref(holder, target)))
}

// Locks

func (k *kpiClient) LockInit(ctx context.Context, name string) (ObjID, error) {
	return objOf(invoke(ctx, k, "LockInit", pb.KPIClient.LockInit, k.name(name)))
}
func (k *kpiClient) LockDestroy(ctx context.Context, id ObjID) error {
	return resultOf(invoke(ctx, k, "LockDestroy", pb.KPIClient.LockDestroy, k.obj(id)))
}
func (k *kpiClient) Lock(ctx context.Context, id ObjID) error {
	return resultOf(invoke(ctx, k, "Lock", pb.KPIClient.Lock, k.obj(id)))
}
func (k *kpiClient) Unlock(ctx context.Context, id ObjID) error {
	return resultOf(invoke(ctx, k, "Unlock", pb.KPIClient.Unlock, k.obj(id)))
}

// Ifnets

func (k *kpiClient) IfAttach(ctx context.Context, name, driver string) (IfInfo, error) {
	return ifInfoOf(invoke(ctx, k, "IfAttach", pb.KPIClient.IfAttach,
		&pb.IfAttachRequest{Token: k.token, Name: name, Driver: driver}))
}
func (k *kpiClient) IfDetach(ctx context.Context, name string) error {
	return resultOf(invoke(ctx, k, "IfDetach", pb.KPIClient.IfDetach, k.name(name)))
}
func (k *kpiClient) IfLookup(ctx context.Context, name string) (IfInfo, error) {
	return ifInfoOf(invoke(ctx, k, "IfLookup", pb.KPIClient.IfLookup, k.name(name)))
}
func (k *kpiClient) IfList(ctx context.Context) ([]IfInfo, error) {
	r, err := invoke(ctx, k, "IfList", pb.KPIClient.IfList, &pb.TokenRequest{Token: k.token})
	if err != nil {
		return nil, err
	}
	var out []IfInfo
	for _, i := range r.GetIfaces() {
		out = append(out, ifInfoFromPB(i))
	}
	return out, r.GetError().Err()
}
func (k *kpiClient) IfSetFlag(ctx context.Context, name, flag string, on bool) error {
	return resultOf(invoke(ctx, k, "IfSetFlag", pb.KPIClient.IfSetFlag,
		&pb.IfSetFlagRequest{Token: k.token, Name: name, Flag: flag, On: on}))
}

// Pfil

func (k *kpiClient) PfilHeadRegister(ctx context.Context, name string) (ObjID, error) {
	return objOf(invoke(ctx, k, "PfilHeadRegister", pb.KPIClient.PfilHeadRegister, k.name(name)))
}
func (k *kpiClient) PfilHeadUnregister(ctx context.Context, id ObjID) error {
	return resultOf(invoke(ctx, k, "PfilHeadUnregister", pb.KPIClient.PfilHeadUnregister, k.obj(id)))
}
func (k *kpiClient) PfilHookAdd(ctx context.Context, head, hook string) (ObjID, error) {
	return objOf(invoke(ctx, k, "PfilHookAdd", pb.KPIClient.PfilHookAdd, k.hook(head, hook)))
}
func (k *kpiClient) PfilHookRemove(ctx context.Context, id ObjID) error {
	return resultOf(invoke(ctx, k, "PfilHookRemove", pb.KPIClient.PfilHookRemove, k.obj(id)))
}

// Hhook

func (k *kpiClient) HhookHeadRegister(ctx context.Context, name string) (ObjID, error) {
	return objOf(invoke(ctx, k, "HhookHeadRegister", pb.KPIClient.HhookHeadRegister, k.name(name)))
}
func (k *kpiClient) HhookHeadDeregister(ctx context.Context, id ObjID) error {
	return resultOf(invoke(ctx, k, "HhookHeadDeregister", pb.KPIClient.HhookHeadDeregister, k.obj(id)))
}
func (k *kpiClient) HhookAdd(ctx context.Context, head, name string) (ObjID, error) {
	return objOf(invoke(ctx, k, "HhookAdd", pb.KPIClient.HhookAdd, k.hook(head, name)))
}
func (k *kpiClient) HhookRemove(ctx context.Context, id ObjID) error {
	return resultOf(invoke(ctx, k, "HhookRemove", pb.KPIClient.HhookRemove, k.obj(id)))
}

// Multicast

func (k *kpiClient) McastJoin(ctx context.Context, ifname, group string) (ObjID, error) {
	return objOf(invoke(ctx, k, "McastJoin", pb.KPIClient.McastJoin,
		&pb.McastJoinRequest{Token: k.token, Ifname: ifname, Group: group}))
}
func (k *kpiClient) McastLeave(ctx context.Context, id ObjID) error {
	return resultOf(invoke(ctx, k, "McastLeave", pb.KPIClient.McastLeave, k.obj(id)))
}

// Encap

func (k *kpiClient) EncapRegister(ctx context.Context, family string) (ObjID, error) {
	return objOf(invoke(ctx, k, "EncapRegister", pb.KPIClient.EncapRegister, k.name(family)))
}
func (k *kpiClient) EncapDeregister(ctx context.Context, id ObjID) error {
	return resultOf(invoke(ctx, k, "EncapDeregister", pb.KPIClient.EncapDeregister, k.obj(id)))
}
func (k *kpiClient) EncapAttach(ctx context.Context, family, name string) (ObjID, error) {
	return objOf(invoke(ctx, k, "EncapAttach", pb.KPIClient.EncapAttach,
		&pb.EncapAttachRequest{Token: k.token, Family: family, Name: name}))
}
func (k *kpiClient) EncapDetach(ctx context.Context, id ObjID) error {
	return resultOf(invoke(ctx, k, "EncapDetach", pb.KPIClient.EncapDetach, k.obj(id)))
}
