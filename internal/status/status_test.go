package status

import (
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"roster.dev/roster/api/v1alpha1"
)

func TestApply(t *testing.T) {
	cases := []struct {
		name            string
		summary         Summary
		wantReady       metav1.ConditionStatus
		wantReconciling bool
		wantStalled     bool
	}{
		{"ready", Summary{Ready, "Provisioned", "The user is in the store."}, metav1.ConditionTrue, false, false},
		{"progressing", Summary{Progressing, "StoreUnavailable", "The store did not answer."}, metav1.ConditionFalse, true, false},
		{"stalled", Summary{Stalled, "InvalidSpec", "spec.timeZone is not an IANA time zone."}, metav1.ConditionFalse, false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Start from the opposite state so that stale conditions must be removed.
			conds := []metav1.Condition{}
			Apply(&conds, 1, Summary{Progressing, "Old", "Old."})
			Apply(&conds, 1, Summary{Stalled, "Old", "Old."})
			Apply(&conds, 2, tc.summary)

			ready := meta.FindStatusCondition(conds, v1alpha1.ConditionReady)
			if ready == nil || ready.Status != tc.wantReady || ready.Reason != tc.summary.Reason || ready.ObservedGeneration != 2 {
				t.Errorf("Ready = %+v, want status %s reason %s generation 2", ready, tc.wantReady, tc.summary.Reason)
			}
			if got := meta.IsStatusConditionTrue(conds, v1alpha1.ConditionReconciling); got != tc.wantReconciling {
				t.Errorf("Reconciling = %v, want %v", got, tc.wantReconciling)
			}
			if got := meta.FindStatusCondition(conds, v1alpha1.ConditionStalled) != nil; got != tc.wantStalled {
				t.Errorf("Stalled present = %v, want %v", got, tc.wantStalled)
			}
		})
	}
}

func TestApplyKeepsTransitionTime(t *testing.T) {
	conds := []metav1.Condition{}
	Apply(&conds, 1, Summary{Ready, "Provisioned", "Fine."})
	before := *meta.FindStatusCondition(conds, v1alpha1.ConditionReady)
	before.LastTransitionTime = metav1.Unix(1, 0)
	conds[0] = before
	Apply(&conds, 1, Summary{Ready, "Provisioned", "Fine."})
	if got := meta.FindStatusCondition(conds, v1alpha1.ConditionReady); got.LastTransitionTime != before.LastTransitionTime {
		t.Errorf("unchanged condition got a new transition time: %v", got.LastTransitionTime)
	}
}
