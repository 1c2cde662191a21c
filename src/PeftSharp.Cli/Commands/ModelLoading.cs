using PeftSharp.Core;
using PeftSharp.IO;
using PeftSharp.Models;
using TorchSharp;

namespace PeftSharp.Cli.Commands;

/// <summary>Loads a model folder with zero or more adapters, optionally merged: shared by forward, generate, eval and merge.</summary>
internal static class ModelLoading
{
    /// <summary>
    /// Loads the model and its adapters, all active; adapter <c>i</c> is named <c>names[i]</c> when given, else
    /// <c>default</c> (the first) or <c>adapter&lt;i&gt;</c>.
    /// </summary>
    public static (PretrainedModel Model, PeftModel? Peft) Load(string modelDir, IReadOnlyList<DirectoryInfo> adapters, bool merge, torch.Device device, IReadOnlyList<string?>? names = null)
    {
        var model = AutoModel.FromPretrained(modelDir, adapters.Count == 0 ? new ModelLoadOptions { Device = device } : AutoModel.OptionsForAdapter(modelDir, adapters[0].FullName, device));
        if (adapters.Count == 0)
        {
            return (model, null);
        }
        var peft = PeftModel.Wrap(model);
        for (var i = 0; i < adapters.Count; i++)
        {
            PeftAdapterFiles.Load(peft, adapters[i].FullName, AdapterName(names, i));
        }
        peft.SetActiveAdapters([.. peft.Configs.Keys]);
        if (merge)
        {
            return ((PretrainedModel)peft.MergeAndUnload(), null);
        }
        return (model, peft);
    }

    /// <summary>The name <see cref="Load"/> gives adapter <paramref name="index"/>.</summary>
    public static string AdapterName(IReadOnlyList<string?>? names, int index) =>
        names?[index] ?? (index == 0 ? PeftAdapterFiles.DefaultAdapterName : $"adapter{index}");
}
