package housekeeper

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudformation"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awseventstargets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/ami-housekeeper/ami-housekeeper/infra/config"
)

// Parameters of the member stack, which the StackSet sets from the
// central stack: the central stack may be environment-agnostic, so its
// account, region and bus ARN are known only when CloudFormation deploys it.
const (
	ParamCentralAccount = "CentralAccountId"
	ParamCentralRegion  = "CentralRegion"
	ParamCentralBus     = "CentralEventBusArn"
)

// MaxTemplateBodyBytes is CloudFormation's limit on a TemplateBody
// (CreateStackSet, "TemplateBody": 51,200 bytes).
const MaxTemplateBodyBytes = 51200

// MemberProps configures the member stack.
type MemberProps struct {
	// CentralStackName names the central functions' roles (RoleNames).
	CentralStackName string
	Organization     config.Organization
	// Needs is what the policy's variants ask of the member roles.
	Needs Needs
	// RecycleBin are the rules each member region gets (ImageDays 0: none).
	RecycleBin RecycleBinProps
}

// Member is the member stack: what every account and region of the
// organization gets through the StackSet.
type Member struct {
	Stack awscdk.Stack
	// Roles are the member roles by function (OrgWorkerFunctions), each
	// assumable by that function's central role only and holding that
	// function's statements only. They are created in the stack instance
	// of the first of the StackSet's regions only: IAM is global to the
	// account.
	Roles map[string]awsiam.Role
	// ForwardCalls and ForwardStateChanges forward the functions' events
	// to the central bus, through ForwardingRole (made in the first of the
	// StackSet's regions only, like Roles). All three have fixed names
	// (config.Organization.ForwarderRole, ForwardCloudTrailRule,
	// ForwardStateChangeRule).
	ForwardCalls, ForwardStateChanges awsevents.Rule
	ForwardingRole                    awsiam.Role
	RecycleBin                        *RecycleBinRules
}

// NewMemberStack creates the member stack in scope (its own app: it is
// synthesized into the StackSet's template, never deployed by the CDK).
func NewMemberStack(scope constructs.Construct, id string, p *MemberProps) *Member {
	o := p.Organization
	if len(o.StackSetRegions) == 0 {
		panic("member stack: no StackSet regions")
	}
	stack := awscdk.NewStack(scope, jsii.String(id), &awscdk.StackProps{
		Description: jsii.String("ami-housekeeper member: the roles the central functions assume (one each), event forwarding to the central bus, Recycle Bin rules"),
		// No assets and no CDK bootstrap in the member accounts: the
		// template must deploy as it is.
		Synthesizer:        awscdk.NewBootstraplessSynthesizer(&awscdk.BootstraplessSynthesizerProps{}),
		AnalyticsReporting: jsii.Bool(false),
	})
	param := func(name, description, pattern string) *string {
		return awscdk.NewCfnParameter(stack, jsii.String(name), &awscdk.CfnParameterProps{
			Type: jsii.String("String"), Description: jsii.String(description), AllowedPattern: jsii.String(pattern),
		}).ValueAsString()
	}
	centralAccount := param(ParamCentralAccount, "Account of the central ami-housekeeper stack", `^[0-9]{12}$`)
	centralRegion := param(ParamCentralRegion, "Region of the central ami-housekeeper stack", `^[a-z0-9-]+$`)
	centralBus := param(ParamCentralBus, "ARN of the central event bus", `^arn:[a-z-]+:events:[a-z0-9-]+:[0-9]{12}:event-bus/[A-Za-z0-9._-]+$`)

	// IAM is global: the roles are made once per account, by the stack
	// instance in the first of the StackSet's regions.
	roleRegion := awscdk.NewCfnCondition(stack, jsii.String("IsRoleRegion"), &awscdk.CfnConditionProps{
		Expression: awscdk.Fn_ConditionEquals(awscdk.Aws_REGION(), jsii.String(o.StackSetRegions[0])),
	})
	// The central stack's own account and region already have their rules
	// (default bus, Recycle Bin): a member stack there would duplicate them.
	notCentral := awscdk.NewCfnCondition(stack, jsii.String("IsNotCentralRegionOfCentralAccount"), &awscdk.CfnConditionProps{
		Expression: awscdk.Fn_ConditionNot(awscdk.Fn_ConditionAnd(
			awscdk.Fn_ConditionEquals(awscdk.Aws_ACCOUNT_ID(), centralAccount),
			awscdk.Fn_ConditionEquals(awscdk.Aws_REGION(), centralRegion))),
	})

	m := &Member{Stack: stack, Roles: map[string]awsiam.Role{}}
	for _, function := range OrgWorkerFunctions {
		role := newMemberRole(stack, p, function, centralAccount)
		onlyIf(role, roleRegion)
		m.Roles[function] = role
	}

	// The forwarding role has a fixed name, like its rules, so that an SCP
	// can keep everyone but the StackSet from changing them (docs/iam.md).
	// IAM is global: like the member roles it is made by the instance in
	// the first region, and the other regions' rules name it by its ARN.
	m.ForwardingRole = awsiam.NewRole(stack, jsii.String("ForwardingRole"), &awsiam.RoleProps{
		RoleName:    jsii.String(o.ForwarderRole()),
		AssumedBy:   awsiam.NewServicePrincipal(jsii.String("events.amazonaws.com"), nil),
		Description: jsii.String("ami-housekeeper: forwards EC2 events to the central bus"),
		InlinePolicies: &map[string]awsiam.PolicyDocument{
			"ami-housekeeper-forward": awsiam.NewPolicyDocument(&awsiam.PolicyDocumentProps{Statements: &[]awsiam.PolicyStatement{
				awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
					Actions: jsii.Strings("events:PutEvents"), Resources: &[]*string{centralBus},
				}),
			}}),
		},
	})
	onlyIf(m.ForwardingRole, roleRegion)
	// In the first region the rules reference the role itself, so that
	// CloudFormation makes it before them; elsewhere its ARN as built.
	forwarderARN := awscdk.Token_AsString(awscdk.Fn_ConditionIf(roleRegion.LogicalId(), m.ForwardingRole.RoleArn(),
		stack.FormatArn(&awscdk.ArnComponents{
			Service: jsii.String("iam"), Region: jsii.String(""), Resource: jsii.String("role"), ResourceName: jsii.String(o.ForwarderRole()),
		})), nil)

	fwd := constructs.NewConstruct(stack, jsii.String("Forwarding"))
	// Immutable: the role's one permission is its inline policy above.
	forwarder := awsiam.Role_FromRoleArn(fwd, jsii.String("Role"), forwarderARN, &awsiam.FromRoleArnOptions{Mutable: jsii.Bool(false)})
	bus := awsevents.EventBus_FromEventBusArn(fwd, jsii.String("CentralBus"), centralBus)
	forward := func(id, name, description string, pattern *awsevents.EventPattern) awsevents.Rule {
		return awsevents.NewRule(fwd, jsii.String(id), &awsevents.RuleProps{
			RuleName:     jsii.String(name),
			Description:  jsii.String("ami-housekeeper: forwards " + description + " to the central bus"),
			EventPattern: pattern,
			Targets:      &[]awsevents.IRuleTarget{awseventstargets.NewEventBus(bus, &awseventstargets.EventBusProps{Role: forwarder})},
		})
	}
	m.ForwardCalls = forward("CloudTrailRule", o.ForwardCloudTrailRule(), "the EC2 calls the tagger and the sharing guard handle", cloudTrailCalls(ForwardedCloudTrailEvents()...))
	m.ForwardStateChanges = forward("StateChangeRule", o.ForwardStateChangeRule(), "AMIs becoming available", imageAvailable())
	onlyIf(fwd, notCentral)
	cdknag.NagSuppressions_AddResourceSuppressions(fwd, &[]*cdknag.NagPackSuppression{
		{Id: jsii.String("Serverless-EventBusDLQ"), Reason: jsii.String(
			"A dead-letter queue in every member account and region would go unwatched; an event EventBridge could not forward (after its 24 hours of retries) is caught by the next scheduled audit and sweep, and the central sweep counts AMIs the tagger missed (TaggerMissedAMIsAlarm).")},
	}, jsii.Bool(true))

	m.RecycleBin = NewRecycleBinRules(stack, "RecycleBin", &p.RecycleBin)
	if m.RecycleBin != nil {
		onlyIf(m.RecycleBin, notCentral)
	}
	return m
}

// ForwardedCloudTrailEvents are the CloudTrail calls a member forwards:
// those the tagger's and the sharing guard's rules on the central bus
// match.
func ForwardedCloudTrailEvents() []string {
	return slices.Concat(TaggerCloudTrailEvents, SharingCloudTrailEvents)
}

// newMemberRole creates function's member role: trusted by function's
// central role only, holding only what function does in an account (the
// statements of its own role, accountStatements, over every region of the
// StackSet). A tagger session can then tag, and nothing more, in a member
// account.
func newMemberRole(stack awscdk.Stack, p *MemberProps, function string, centralAccount *string) awsiam.Role {
	o := p.Organization
	centralRole := stack.FormatArn(&awscdk.ArnComponents{
		Service: jsii.String("iam"), Region: jsii.String(""), Account: centralAccount,
		Resource: jsii.String("role"), ResourceName: jsii.String(RolePath[1:] + CentralRoleName(p.CentralStackName, function)),
	})
	// The central account is the principal; the conditions narrow it to
	// the function's role (by ARN, so a role deleted and remade by a
	// deploy is still trusted), of this organization, with the external id
	// when one is configured.
	trust := Conditions{
		"ArnEquals":    {"aws:PrincipalArn": centralRole},
		"StringEquals": {"aws:PrincipalOrgID": o.ID},
	}
	if o.ExternalID != "" {
		trust["StringEquals"]["sts:ExternalId"] = o.ExternalID
	}
	s := accountStatements(stack, function, p.Needs, o.StackSetRegions)
	role := awsiam.NewRole(stack, jsii.String(memberRoleID(function)), &awsiam.RoleProps{
		RoleName:    jsii.String(o.MemberRole(function)),
		AssumedBy:   awsiam.NewPrincipalWithConditions(awsiam.NewAccountPrincipal(centralAccount), trust.doc()),
		Description: jsii.String("ami-housekeeper: assumed by the central " + function + " function only, allowed what it does in this account"),
		InlinePolicies: &map[string]awsiam.PolicyDocument{
			"ami-housekeeper-" + function: awsiam.NewPolicyDocument(&awsiam.PolicyDocumentProps{Statements: &s.list}),
		},
	})
	suppressRoleWildcards(role, []string{"*"}, accountAccessOf[function].wildcards...)
	return role
}

// memberRoleID is the construct id of function's member role
// ("TaggerMemberRole").
func memberRoleID(function string) string {
	return strings.ToUpper(function[:1]) + function[1:] + "MemberRole"
}

// onlyIf puts every CloudFormation resource under scope under condition.
func onlyIf(scope constructs.IConstruct, condition awscdk.CfnCondition) {
	for _, c := range *scope.Node().FindAll(constructs.ConstructOrder_PREORDER) {
		if r, ok := c.(awscdk.CfnResource); ok && *awscdk.CfnResource_IsCfnResource(c) {
			r.CfnOptions().SetCondition(condition)
		}
	}
}

// memberTemplate synthesizes the member stack in an app of its own, with
// cdk-nag, and returns its template (compact JSON) and the stack's error
// and warning annotations (cdk-nag's findings among them).
func memberTemplate(p *MemberProps) (body string, errs, warnings []string) {
	dir, err := os.MkdirTemp("", "ami-housekeeper-member-")
	if err != nil {
		panic(fmt.Sprintf("member stack: %v", err))
	}
	defer os.RemoveAll(dir)
	app := awscdk.NewApp(&awscdk.AppProps{
		Outdir:             jsii.String(dir),
		AnalyticsReporting: jsii.Bool(false),
		// The CLI's context (CDK_CONTEXT_JSON) asks for path metadata; the
		// StackSet's template has no use for it.
		PostCliContext: &map[string]any{"aws:cdk:enable-path-metadata": false, "aws:cdk:enable-asset-metadata": false},
	})
	m := NewMemberStack(app, "Member", p)
	ApplyNag(app)
	app.Synth(nil)
	for _, c := range *m.Stack.Node().FindAll(constructs.ConstructOrder_PREORDER) {
		for _, e := range *c.Node().Metadata() {
			msg := fmt.Sprintf("member stack %s: %v", *c.Node().Path(), e.Data)
			switch *e.Type {
			case "aws:cdk:error":
				errs = append(errs, msg)
			case "aws:cdk:warning":
				warnings = append(warnings, msg)
			}
		}
	}
	raw, err := os.ReadFile(filepath.Join(dir, *m.Stack.TemplateFile()))
	if err != nil {
		panic(fmt.Sprintf("member stack: reading its template: %v", err))
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, raw); err != nil {
		panic(fmt.Sprintf("member stack: its template: %v", err))
	}
	return compact.String(), errs, warnings
}

// MemberStackSetProps configures the StackSet.
type MemberStackSetProps struct {
	Member MemberProps
	// Bus is the central bus the members forward to.
	Bus awsevents.IEventBus
}

// NewMemberStackSet creates the service-managed StackSet that deploys the
// member stack to every account of the target OUs, in every StackSet
// region, and to each account that joins them later.
func NewMemberStackSet(scope constructs.Construct, id string, p *MemberStackSetProps) awscloudformation.CfnStackSet {
	o := p.Member.Organization
	body, errs, warnings := memberTemplate(&p.Member)
	if len(body) > MaxTemplateBodyBytes {
		panic(fmt.Sprintf("member stack: template of %d bytes, more than the %d CloudFormation takes as a StackSet's TemplateBody", len(body), MaxTemplateBodyBytes))
	}
	targets := &awscloudformation.CfnStackSet_DeploymentTargetsProperty{
		OrganizationalUnitIds: jsii.Strings(o.StackSetTargetOUs...),
	}
	if len(o.Scope.ExcludeAccounts) > 0 {
		// Excluded accounts get no member roles at all.
		targets.AccountFilterType = jsii.String("DIFFERENCE")
		targets.Accounts = jsii.Strings(o.Scope.ExcludeAccounts...)
	}
	stack := awscdk.Stack_Of(scope)
	set := awscloudformation.NewCfnStackSet(scope, jsii.String(id), &awscloudformation.CfnStackSetProps{
		StackSetName:    jsii.String(*stack.StackName() + "-member"),
		Description:     jsii.String("ami-housekeeper member stacks: the member roles (one per central function), event forwarding to the central bus, Recycle Bin rules"),
		PermissionModel: jsii.String("SERVICE_MANAGED"),
		AutoDeployment: &awscloudformation.CfnStackSet_AutoDeploymentProperty{
			Enabled: jsii.Bool(true),
			// An account leaving the target OUs loses the role and rules.
			RetainStacksOnAccountRemoval: jsii.Bool(false),
		},
		CallAs:       jsii.String(o.StackSetCallAs),
		Capabilities: jsii.Strings("CAPABILITY_NAMED_IAM"),
		// Operations wait for the one running instead of failing.
		ManagedExecution: map[string]any{"Active": true},
		OperationPreferences: &awscloudformation.CfnStackSet_OperationPreferencesProperty{
			FailureTolerancePercentage: jsii.Number(float64(o.StackSetFailureTolerancePercentage)),
			MaxConcurrentPercentage:    jsii.Number(float64(o.StackSetMaxConcurrentPercentage)),
			RegionConcurrencyType:      jsii.String("PARALLEL"),
			// Keep the concurrency asked for: in the default strict mode
			// CloudFormation lowers it to the failure tolerance plus one.
			ConcurrencyMode: jsii.String("SOFT_FAILURE_TOLERANCE"),
		},
		StackInstancesGroup: []any{&awscloudformation.CfnStackSet_StackInstancesProperty{
			DeploymentTargets: targets,
			Regions:           jsii.Strings(o.StackSetRegions...),
		}},
		Parameters: []any{
			&awscloudformation.CfnStackSet_ParameterProperty{ParameterKey: jsii.String(ParamCentralAccount), ParameterValue: awscdk.Aws_ACCOUNT_ID()},
			&awscloudformation.CfnStackSet_ParameterProperty{ParameterKey: jsii.String(ParamCentralRegion), ParameterValue: awscdk.Aws_REGION()},
			&awscloudformation.CfnStackSet_ParameterProperty{ParameterKey: jsii.String(ParamCentralBus), ParameterValue: p.Bus.EventBusArn()},
		},
		TemplateBody: jsii.String(body),
	})
	// The member stack is synthesized apart: its findings are reported here,
	// so that an unsuppressed one fails this synth like any other.
	for _, e := range errs {
		awscdk.Annotations_Of(set).AddError(jsii.String(e))
	}
	for _, w := range warnings {
		awscdk.Annotations_Of(set).AddWarningV2(jsii.String("ami-housekeeper:member-stack"), jsii.String(w), nil)
	}
	return set
}

// WriteMemberTemplates writes, for each stack holding a member StackSet,
// its member template to dir as <artifact id>-member.template.json.
func WriteMemberTemplates(dir string, stacks []awscdk.Stack) error {
	for _, stack := range stacks {
		for _, c := range *stack.Node().FindAll(constructs.ConstructOrder_PREORDER) {
			set, ok := c.(awscloudformation.CfnStackSet)
			if !ok || !*awscloudformation.CfnStackSet_IsCfnStackSet(c) || set.TemplateBody() == nil {
				continue
			}
			var doc any
			if err := json.Unmarshal([]byte(*set.TemplateBody()), &doc); err != nil {
				return fmt.Errorf("member template of %s: %w", *stack.StackName(), err)
			}
			b, err := json.MarshalIndent(doc, "", " ")
			if err != nil {
				return err
			}
			path := filepath.Join(dir, *stack.ArtifactId()+"-member.template.json")
			if err := os.WriteFile(path, append(b, '\n'), 0o600); err != nil {
				return fmt.Errorf("member template of %s: %w", *stack.StackName(), err)
			}
		}
	}
	return nil
}
