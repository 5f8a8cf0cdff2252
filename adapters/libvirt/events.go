package libvirt

import (
	"context"
	"sync"

	golibvirt "github.com/digitalocean/go-libvirt"
)

// deviceKey names one device of one domain, as libvirt's device events do.
type deviceKey struct {
	domain golibvirt.UUID
	alias  string
}

// deviceEvent is what libvirt reported about a device being unplugged.
type deviceEvent struct {
	// removed is true for VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED, false for
	// VIR_DOMAIN_EVENT_ID_DEVICE_REMOVAL_FAILED.
	removed bool
}

// deviceWaiter receives the events for one device.
type deviceWaiter struct {
	key deviceKey
	ch  chan deviceEvent
}

// deviceEvents routes libvirt's device events to the detaches waiting for
// them. A waiter is registered before the detach request is sent, because
// libvirt may report the removal before the request returns (upstream
// _detach_from_live_and_wait_for_event).
type deviceEvents struct {
	mu      sync.Mutex
	waiters map[deviceKey]map[*deviceWaiter]struct{}
}

func newDeviceEvents() *deviceEvents {
	return &deviceEvents{waiters: map[deviceKey]map[*deviceWaiter]struct{}{}}
}

// expect registers interest in key's events; call done when finished.
func (e *deviceEvents) expect(key deviceKey) *deviceWaiter {
	w := &deviceWaiter{key: key, ch: make(chan deviceEvent, 1)}
	e.mu.Lock()
	defer e.mu.Unlock()
	set := e.waiters[key]
	if set == nil {
		set = map[*deviceWaiter]struct{}{}
		e.waiters[key] = set
	}
	set[w] = struct{}{}
	return w
}

// done unregisters w.
func (e *deviceEvents) done(w *deviceWaiter) {
	e.mu.Lock()
	defer e.mu.Unlock()
	set := e.waiters[w.key]
	delete(set, w)
	if len(set) == 0 {
		delete(e.waiters, w.key)
	}
}

// notify hands ev to every waiter for key; a waiter keeps the first event
// it did not yet read (a removal is final, so later ones add nothing).
func (e *deviceEvents) notify(key deviceKey, ev deviceEvent) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	for w := range e.waiters[key] {
		select {
		case w.ch <- ev:
		default:
		}
	}
	return len(e.waiters[key])
}

// subscribe registers for device-removed and device-removal-failed events
// on every domain of session s and routes them until ctx ends or the
// session closes.
func (e *deviceEvents) subscribe(ctx context.Context, s *session) error {
	removed, err := s.lv.SubscribeEvents(ctx, golibvirt.DomainEventIDDeviceRemoved, nil)
	if err != nil {
		return err
	}
	go e.route(removed)
	failed, err := s.lv.SubscribeEvents(ctx, golibvirt.DomainEventIDDeviceRemovalFailed, nil)
	if err != nil {
		return err
	}
	go e.route(failed)
	return nil
}

// route reads one subscription until go-libvirt closes it (which it does
// when the subscription's context ends or the socket closes).
func (e *deviceEvents) route(ch <-chan interface{}) {
	for ev := range ch {
		switch m := ev.(type) {
		case *golibvirt.DomainEventCallbackDeviceRemovedMsg:
			e.notify(deviceKey{domain: m.Msg.Dom.UUID, alias: m.Msg.DevAlias}, deviceEvent{removed: true})
		case *golibvirt.DomainEventCallbackDeviceRemovalFailedMsg:
			e.notify(deviceKey{domain: m.Dom.UUID, alias: m.DevAlias}, deviceEvent{removed: false})
		}
	}
}
