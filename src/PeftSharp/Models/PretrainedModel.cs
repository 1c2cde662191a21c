using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Models;

/// <summary>
/// A Hugging Face model built in TorchSharp with transformers' module and parameter names, so that checkpoints and PEFT
/// adapters apply name for name. Every child an adapter may target is a non-readonly field typed
/// <c>nn.Module&lt;Tensor, Tensor&gt;</c> carrying the Hugging Face name, and forwards always call through the field,
/// so an injector can replace it (and re-register it) without other bookkeeping.
/// </summary>
public abstract class PretrainedModel : nn.Module<ModelInput, ModelOutput>, Core.IHasOutputHeads
{
    protected PretrainedModel(string name, ModelConfig config) : base(name)
    {
        Config = config;
    }

    /// <summary>The config the model was built from.</summary>
    public ModelConfig Config { get; }

    /// <summary>What <see cref="ModelOutput.Logits"/> hold.</summary>
    public abstract ModelTask Task { get; }

    /// <summary>transformers' class name, e.g. <c>LlamaForCausalLM</c>.</summary>
    public abstract string Architecture { get; }

    /// <summary>
    /// Qualified names of the output heads (<c>lm_head</c>, <c>score</c>, <c>classifier</c>): PEFT's
    /// <c>all-linear</c> leaves them out. Empty for a bare encoder.
    /// </summary>
    public abstract IReadOnlyList<string> OutputHeadNames { get; }

    /// <summary>Number of decoder/encoder layers.</summary>
    public abstract int NumLayers { get; }

    /// <summary>What <see cref="AutoModel.FromPretrained"/> did beyond copying tensors; null for a model from <see cref="AutoModel.FromConfig"/>.</summary>
    public LoadReport? LoadReport { get; internal set; }

    /// <summary>
    /// transformers' <c>base_model_prefix</c> (<c>model</c>, <c>transformer</c>, <c>bert</c>): a checkpoint saved from
    /// the bare base model lacks it, one saved with a head has it (transformers adds or strips it when loading).
    /// </summary>
    protected internal abstract string BaseModelPrefix { get; }

    /// <summary>Checkpoint keys (in the model's naming) that are not parameters and are skipped, e.g. stored causal-mask buffers.</summary>
    protected internal virtual bool IsIgnorableCheckpointKey(string key) => false;

    /// <summary>
    /// Gradient (activation) checkpointing of every decoder/encoder layer, transformers'
    /// <c>gradient_checkpointing_enable()</c>: in training mode with gradients enabled, each layer keeps only its inputs
    /// and is recomputed in the backward (see <see cref="Common.Checkpointing"/>), trading one more forward for the
    /// layers' activation memory. Has no effect in eval mode, under <c>no_grad</c> or with a KV cache. Off by default;
    /// <see cref="ModelLoadOptions.GradientCheckpointing"/> sets it at load time.
    /// </summary>
    public bool GradientCheckpointing
    {
        get => Stacks().Any(s => s.GradientCheckpointing);
        set
        {
            foreach (var stack in Stacks())
            {
                stack.GradientCheckpointing = value;
            }
        }
    }

    private IEnumerable<Common.ICheckpointedStack> Stacks() =>
        named_modules().Select(m => m.module).OfType<Common.ICheckpointedStack>();

    /// <summary>Runs the model; see <see cref="ModelInput"/> for the shapes.</summary>
    public ModelOutput Forward(Tensor inputIds, Tensor? attentionMask = null, Tensor? tokenTypeIds = null, Tensor? positionIds = null, KvCache? cache = null)
    {
        return call(new ModelInput(inputIds, attentionMask, tokenTypeIds, positionIds, cache));
    }

    /// <summary>An empty KV cache sized for this model; decoder models only.</summary>
    public virtual KvCache CreateCache() => new(NumLayers);
}
