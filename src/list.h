/* SPDX-License-Identifier: MIT */
#ifndef RSC_LIST_H
#define RSC_LIST_H

#include <stdbool.h>
#include <stddef.h>

/*
 * The one list of src/ (libuv's queue, the kernel's list_head): intrusive,
 * circular, doubly linked, with a head node that is no item. An item embeds
 * one struct rsc__list per list it can be on, and RSC__LIST_ITEM() finds
 * the item from it. An empty head points at itself: rsc__list_init(), or
 * RSC__LIST_INIT for a static one. A node's links mean nothing while it is
 * on no list (as libuv's): whoever removes it knows it is on one, by a flag
 * or by the list it walks. No atomics: a list other threads push without
 * a lock (rsc_loop_post's) stays a stack of its own.
 */
struct rsc__list {
	struct rsc__list *next, *prev;
};

#define RSC__LIST_INIT(name) { &(name), &(name) }

/* The item of type @type whose field @member is @node. */
#define RSC__LIST_ITEM(node, type, member) \
	((type *)(void *)((char *)(node) - offsetof(type, member)))

static inline void rsc__list_init(struct rsc__list *head)
{
	head->next = head->prev = head;
}

static inline bool rsc__list_empty(const struct rsc__list *head)
{
	return head->next == head;
}

/* @node between @prev and @next, which are next to each other. */
static inline void rsc__list_insert(struct rsc__list *node, struct rsc__list *prev,
				    struct rsc__list *next)
{
	node->next = next;
	node->prev = prev;
	prev->next = node;
	next->prev = node;
}

/* At the tail: a FIFO queue pops from the front. */
static inline void rsc__list_push_back(struct rsc__list *head, struct rsc__list *node)
{
	rsc__list_insert(node, head->prev, head);
}

/* At the front: a LIFO stack pops from there too. */
static inline void rsc__list_push_front(struct rsc__list *head, struct rsc__list *node)
{
	rsc__list_insert(node, head, head->next);
}

static inline void rsc__list_remove(struct rsc__list *node)
{
	node->prev->next = node->next;
	node->next->prev = node->prev;
}

/* The node after @node in the list of @head, or NULL at the end. */
static inline struct rsc__list *rsc__list_next(const struct rsc__list *head,
					       const struct rsc__list *node)
{
	return node->next != head ? node->next : NULL;
}

/* The first node, or NULL if the list is empty. */
static inline struct rsc__list *rsc__list_first(const struct rsc__list *head)
{
	return rsc__list_next(head, head);
}

/* The first node, taken off the list, or NULL if it is empty. */
static inline struct rsc__list *rsc__list_pop_front(struct rsc__list *head)
{
	struct rsc__list *node = head->next;

	if (node == head)
		return NULL;
	head->next = node->next;
	node->next->prev = head;
	return node;
}

/* Every node of @from moves to @to, which was empty; @from is left empty. */
static inline void rsc__list_move_all(struct rsc__list *to, struct rsc__list *from)
{
	if (rsc__list_empty(from)) {
		rsc__list_init(to);
		return;
	}
	*to = *from;
	to->next->prev = to;
	to->prev->next = to;
	rsc__list_init(from);
}

/*
 * Iteration: @pos points at each item in turn (of the type it is declared
 * with), through its field @member. The _SAFE walk reads the next node
 * before the body runs, so the body may take @pos off the list (or free
 * it), but no other node. The node is a hidden variable named after @pos.
 */
#define RSC__LIST_FOR_EACH(pos, head, member)                                          \
	for (struct rsc__list *pos##_node_ = (head)->next;                             \
	     pos##_node_ != (head) &&                                                  \
	     ((pos) = RSC__LIST_ITEM(pos##_node_, __typeof__(*(pos)), member), 1);     \
	     pos##_node_ = pos##_node_->next)

#define RSC__LIST_FOR_EACH_REVERSE(pos, head, member)                                  \
	for (struct rsc__list *pos##_node_ = (head)->prev;                             \
	     pos##_node_ != (head) &&                                                  \
	     ((pos) = RSC__LIST_ITEM(pos##_node_, __typeof__(*(pos)), member), 1);     \
	     pos##_node_ = pos##_node_->prev)

#define RSC__LIST_FOR_EACH_SAFE(pos, head, member)                                     \
	for (struct rsc__list *pos##_node_ = (head)->next, *pos##_next_ = pos##_node_->next; \
	     pos##_node_ != (head) &&                                                  \
	     ((pos) = RSC__LIST_ITEM(pos##_node_, __typeof__(*(pos)), member), 1);     \
	     pos##_node_ = pos##_next_, pos##_next_ = pos##_node_->next)

#endif /* RSC_LIST_H */
