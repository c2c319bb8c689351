package embedded

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"roster.dev/roster/internal/store"
)

// groupRecord is a group as persisted. Field names are part of the file
// format. Members are kept in their own buckets, not here.
type groupRecord struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	DisplayName string `json:"displayName,omitempty"`
	ExternalID  string `json:"externalID,omitempty"`
	Description string `json:"description,omitempty"`
}

func (r groupRecord) group() store.Group {
	return store.Group{ID: r.ID, Name: r.Name, DisplayName: r.DisplayName, ExternalID: r.ExternalID, Description: r.Description}
}

func getGroupRecord(tx *bolt.Tx, id string) (groupRecord, error) {
	var r groupRecord
	raw := tx.Bucket(bucketGroups).Get([]byte(id))
	if raw == nil {
		return r, fmt.Errorf("group %q: %w", id, store.ErrNotFound)
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return r, fmt.Errorf("decoding group %q: %w", id, err)
	}
	return r, nil
}

func putGroupRecord(tx *bolt.Tx, r groupRecord) error {
	raw, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encoding group %q: %w", r.ID, err)
	}
	return tx.Bucket(bucketGroups).Put([]byte(r.ID), raw)
}

// claimExternalID indexes the group under its external ID, failing when
// another group holds it. An empty external ID is not indexed.
func claimExternalID(tx *bolt.Tx, ext, id string) error {
	if ext == "" {
		return nil
	}
	b := tx.Bucket(bucketGroupsByExt)
	if holder := b.Get([]byte(ext)); holder != nil && string(holder) != id {
		return fmt.Errorf("group with external ID %q: %w", ext, store.ErrAlreadyExists)
	}
	return b.Put([]byte(ext), []byte(id))
}

// GetGroup implements store.Store.
func (s *Store) GetGroup(ctx context.Context, id string) (store.Group, error) {
	var r groupRecord
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		r, err = getGroupRecord(tx, id)
		return err
	})
	return r.group(), err
}

// FindGroupByName implements store.Store.
func (s *Store) FindGroupByName(ctx context.Context, name string) (store.Group, error) {
	var r groupRecord
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		id := tx.Bucket(bucketGroupsByName).Get([]byte(name))
		if id == nil {
			return fmt.Errorf("group named %q: %w", name, store.ErrNotFound)
		}
		r, err = getGroupRecord(tx, string(id))
		return err
	})
	return r.group(), err
}

// CreateGroup implements store.Store.
func (s *Store) CreateGroup(ctx context.Context, g store.Group, members []string) (store.Group, error) {
	if g.Name == "" {
		return store.Group{}, errors.New("creating group: name is required")
	}
	r := groupRecord{ID: newID(), Name: g.Name, DisplayName: g.DisplayName, ExternalID: g.ExternalID, Description: g.Description}
	err := s.db.Update(func(tx *bolt.Tx) error {
		byName := tx.Bucket(bucketGroupsByName)
		if byName.Get([]byte(g.Name)) != nil {
			return fmt.Errorf("group named %q: %w", g.Name, store.ErrAlreadyExists)
		}
		if err := claimExternalID(tx, g.ExternalID, r.ID); err != nil {
			return err
		}
		if err := byName.Put([]byte(g.Name), []byte(r.ID)); err != nil {
			return err
		}
		if err := putGroupRecord(tx, r); err != nil {
			return err
		}
		if _, err := tx.Bucket(bucketGroupMembers).CreateBucket([]byte(r.ID)); err != nil {
			return err
		}
		return addMembers(tx, r.ID, members)
	})
	if err != nil {
		return store.Group{}, err
	}
	return r.group(), nil
}

// UpdateGroup implements store.Store.
func (s *Store) UpdateGroup(ctx context.Context, id string, update store.GroupUpdate) (store.Group, error) {
	var r groupRecord
	err := s.db.Update(func(tx *bolt.Tx) (err error) {
		if r, err = getGroupRecord(tx, id); err != nil {
			return err
		}
		next := update.Apply(r.group())
		if next.ExternalID != r.ExternalID {
			if err := claimExternalID(tx, next.ExternalID, id); err != nil {
				return err
			}
			if r.ExternalID != "" {
				if err := tx.Bucket(bucketGroupsByExt).Delete([]byte(r.ExternalID)); err != nil {
					return err
				}
			}
		}
		r.DisplayName, r.ExternalID, r.Description = next.DisplayName, next.ExternalID, next.Description
		return putGroupRecord(tx, r)
	})
	if err != nil {
		return store.Group{}, err
	}
	return r.group(), nil
}

// ListGroupMembers implements store.Store. bbolt keeps keys sorted, so the
// IDs come out sorted.
func (s *Store) ListGroupMembers(ctx context.Context, id string) ([]string, error) {
	var ids []string
	err := s.db.View(func(tx *bolt.Tx) error {
		members := tx.Bucket(bucketGroupMembers).Bucket([]byte(id))
		if members == nil {
			return fmt.Errorf("group %q: %w", id, store.ErrNotFound)
		}
		ids = []string{}
		return members.ForEach(func(k, _ []byte) error {
			ids = append(ids, string(k))
			return nil
		})
	})
	return ids, err
}

// UpdateGroupMembers implements store.Store. The diff is applied in one
// transaction: all of it or, on an error, none of it.
func (s *Store) UpdateGroupMembers(ctx context.Context, id string, diff store.MemberDiff) error {
	if diff.IsEmpty() {
		return nil
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketGroups).Get([]byte(id)) == nil {
			return fmt.Errorf("group %q: %w", id, store.ErrNotFound)
		}
		if err := addMembers(tx, id, diff.Add); err != nil {
			return err
		}
		return removeMembers(tx, id, diff.Remove)
	})
}

// DeleteGroup implements store.Store.
func (s *Store) DeleteGroup(ctx context.Context, id string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		r, err := getGroupRecord(tx, id)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if members := tx.Bucket(bucketGroupMembers).Bucket([]byte(id)); members != nil {
			var ids []string
			if err := members.ForEach(func(k, _ []byte) error { ids = append(ids, string(k)); return nil }); err != nil {
				return err
			}
			if err := removeMembers(tx, id, ids); err != nil {
				return err
			}
			if err := tx.Bucket(bucketGroupMembers).DeleteBucket([]byte(id)); err != nil {
				return err
			}
		}
		if r.ExternalID != "" {
			if err := tx.Bucket(bucketGroupsByExt).Delete([]byte(r.ExternalID)); err != nil {
				return err
			}
		}
		if err := tx.Bucket(bucketGroupsByName).Delete([]byte(r.Name)); err != nil {
			return err
		}
		return tx.Bucket(bucketGroups).Delete([]byte(id))
	})
}

// addMembers records each user in the group and the group in each user's
// list. Every user must exist.
func addMembers(tx *bolt.Tx, groupID string, userIDs []string) error {
	if len(userIDs) == 0 {
		return nil
	}
	members := tx.Bucket(bucketGroupMembers).Bucket([]byte(groupID))
	if members == nil {
		return fmt.Errorf("group %q: %w", groupID, store.ErrNotFound)
	}
	users := tx.Bucket(bucketUsers)
	for _, uid := range userIDs {
		if users.Get([]byte(uid)) == nil {
			return fmt.Errorf("adding user %q to group %q: %w", uid, groupID, store.ErrNotFound)
		}
		if err := members.Put([]byte(uid), nil); err != nil {
			return err
		}
		groups, err := tx.Bucket(bucketUserGroups).CreateBucketIfNotExists([]byte(uid))
		if err != nil {
			return err
		}
		if err := groups.Put([]byte(groupID), nil); err != nil {
			return err
		}
	}
	return nil
}

// removeMembers takes users out of the group; users not in it are skipped.
func removeMembers(tx *bolt.Tx, groupID string, userIDs []string) error {
	members := tx.Bucket(bucketGroupMembers).Bucket([]byte(groupID))
	if members == nil {
		return nil
	}
	for _, uid := range userIDs {
		if err := members.Delete([]byte(uid)); err != nil {
			return err
		}
		if groups := tx.Bucket(bucketUserGroups).Bucket([]byte(uid)); groups != nil {
			if err := groups.Delete([]byte(groupID)); err != nil {
				return err
			}
		}
	}
	return nil
}

// leaveAllGroups removes a user from every group it belongs to, before the
// user itself is deleted.
func leaveAllGroups(tx *bolt.Tx, userID string) error {
	groups := tx.Bucket(bucketUserGroups).Bucket([]byte(userID))
	if groups == nil {
		return nil
	}
	err := groups.ForEach(func(gid, _ []byte) error {
		if members := tx.Bucket(bucketGroupMembers).Bucket(gid); members != nil {
			return members.Delete([]byte(userID))
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tx.Bucket(bucketUserGroups).DeleteBucket([]byte(userID))
}
