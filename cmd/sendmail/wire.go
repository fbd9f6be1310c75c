package main

import (
	"github.com/posthorn/posthorn/internal/mta"
	"github.com/posthorn/posthorn/queue"
)

// The object graph of every mode comes from package mta; these are the
// few things cmd adds: which queue, which flags.

// site is the configuration's Site over st (nil for modes without a
// queue).
func (a *app) site(st *queue.Store) *mta.Site {
	return mta.New(mta.Options{Config: a.cfg, Log: a.log, Store: st, NoAlias: a.inv.NoAlias})
}

// delivery is the runner of this process over site's queue.
func (a *app) delivery(site *mta.Site) (*mta.Delivery, error) {
	return mta.NewDelivery(site, mta.DeliveryOptions{QueueInterval: a.inv.QueueInterval, HostStatusDir: hostStatusDir(a.cfg, a.stderr)})
}

// trusted reports whether the invoking user is root, TrustedUser or in a
// T line.
func (a *app) trusted() bool { return mta.Trusted(a.cfg, mta.RunUser()) }
