-- Health of every iam.roster.dev kind: User, Group, UserImport, AccessKey and
-- IdentityStore. Their conditions follow kstatus: Ready is always present,
-- Reconciling and Stalled only while true, and each carries
-- observedGeneration. Stalled means a person must act (Degraded);
-- Reconciling, or Ready not yet True, means Roster is still working and
-- will get there by itself (Progressing).
--
-- Conditions that are not Ready, Reconciling or Stalled are informational
-- and never change the health: a User's Invitation (mail failing), a
-- Group's MembersResolved and MembersTruncated, an IdentityStore's
-- DeactivationEnforced. They are reported on the object and in metrics.
local hs = {}
local kind = obj.kind or "resource"

local function findCondition(conditions, conditionType)
  for _, condition in ipairs(conditions) do
    if condition.type == conditionType then
      return condition
    end
  end
  return nil
end

local function isTrue(condition)
  return condition ~= nil and condition.status == "True"
end

local generation = 0
if obj.metadata ~= nil and obj.metadata.generation ~= nil then
  generation = obj.metadata.generation
end

if obj.status == nil or obj.status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the " .. kind .. " to be observed"
  return hs
end

local conditions = obj.status.conditions
local ready = findCondition(conditions, "Ready")
local reconciling = findCondition(conditions, "Reconciling")
local stalled = findCondition(conditions, "Stalled")

-- status.observedGeneration is bumped when a pass finishes; while a long
-- pass (an import) is still going, the Ready condition says which
-- generation it is working on. A status written for an older generation
-- says nothing about this one.
local observed = obj.status.observedGeneration
if observed == nil and ready ~= nil then
  observed = ready.observedGeneration
end
if observed == nil or observed < generation
    or (ready ~= nil and ready.observedGeneration ~= nil and ready.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the " .. kind .. " to be observed"
  return hs
end

if isTrue(stalled) then
  hs.status = "Degraded"
  hs.message = stalled.message
  return hs
end

if isTrue(reconciling) then
  hs.status = "Progressing"
  hs.message = reconciling.message
  return hs
end

-- An import that finished with failed rows needs a person to look at
-- status.failures, and one still running is not done.
if kind == "UserImport" then
  local phase = obj.status.phase
  local message = ""
  if ready ~= nil then
    message = ready.message
  end
  if phase == "PartiallySucceeded" or phase == "Failed" then
    hs.status = "Degraded"
    hs.message = message
    return hs
  end
  if phase == "Running" or phase == "Pending" then
    hs.status = "Progressing"
    hs.message = message
    return hs
  end
end

if isTrue(ready) then
  hs.status = "Healthy"
  hs.message = ready.message
  return hs
end

if ready ~= nil then
  hs.status = "Progressing"
  hs.message = ready.message
  return hs
end

hs.status = "Progressing"
hs.message = "Waiting for the " .. kind .. " to be Ready"
return hs
