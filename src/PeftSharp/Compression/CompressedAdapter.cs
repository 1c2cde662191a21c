using PeftSharp.Core;
using PeftSharp.IO;
using PeftSharp.Methods.Lora;
using static TorchSharp.torch;

namespace PeftSharp.Compression;

/// <summary>
/// A compressed adapter: always a plain PEFT LoRA (<c>peft_type</c> LORA, whatever the source method was), as its config
/// and its tensors under PEFT's saved names. Owns its tensors.
/// </summary>
public sealed class CompressedAdapter : IDisposable
{
    private readonly List<KeyValuePair<string, Tensor>> _tensors;

    internal CompressedAdapter(LoraConfig config, List<KeyValuePair<string, Tensor>> tensors, IReadOnlyList<ModuleCompression> modules, long sourceParameters)
    {
        Config = config;
        _tensors = tensors;
        Modules = modules;
        SourceParameters = sourceParameters;
    }

    /// <summary>
    /// The LoRA config of the result: <c>r</c>, <c>lora_alpha</c> and the patterns set for the new ranks. A LoRA source
    /// keeps its other keys and each module's scale; another method's source keeps the keys every method shares and gets
    /// scale 1 (<c>lora_alpha = r</c>).
    /// </summary>
    public LoraConfig Config { get; }

    /// <summary>Every tensor of the adapter file (new factors; the source's other tensors, such as heads and biases, copied).</summary>
    public IReadOnlyList<KeyValuePair<string, Tensor>> Tensors => _tensors;

    /// <summary>Per module: ranks, singular values, the error left.</summary>
    public IReadOnlyList<ModuleCompression> Modules { get; }

    /// <summary>Σ kᵢ·(d_in + d_out): the LoRA parameters of the result (heads and biases not counted).</summary>
    public long Parameters => Modules.Sum(m => m.Parameters);

    /// <summary>The trainable parameters the source adapter had on the same modules (LoRA: Σ rᵢ·(d_in + d_out)).</summary>
    public long SourceParameters { get; }

    /// <summary>Writes the adapter as a PEFT folder (adapter_config.json + adapter_model.safetensors, atomically).</summary>
    public void Save(string directory, MethodRegistry? registry = null) => PeftAdapterFiles.Save(directory, Config, _tensors, registry);

    public void Dispose()
    {
        foreach (var (_, t) in _tensors)
        {
            t.Dispose();
        }
        _tensors.Clear();
    }
}
